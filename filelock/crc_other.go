//go:build !amd64 || !gc || purego

package filelock

import (
	"hash/crc32"
	"sync"
	"sync/atomic"
)

// Here lockdir has no CRC instruction of its own. hash/crc32 has one on
// some architectures (arm64, ppc64le, s390x, loong64), but every first
// CRC-32C builds its tables: a 1 KiB one, and on the others an 8 KiB
// slicing-by-8 one. So sums start in software, from tables compiled into
// the binary, and only a process that has summed softSumLimit bytes, and
// so is likely to go on (a long-lived Manager allocating, a check of a
// large registry), switches to hash/crc32 and pays for its set-up once.
// Both give the same sums, which TestCRC32C checks.

// haveCRC32Instr is false: there is no crc32cInstr here.
const haveCRC32Instr = false

// softSumLimit is how many bytes a process checksums in software before
// it switches to hash/crc32: in software they cost about what hash/crc32's
// set-up does.
const softSumLimit = 256 << 10

// softSummed counts the bytes checksummed in software, up to softSumLimit.
// Like hash/crc32's own tables, it is process-wide and changes only speed,
// never a result.
var softSummed atomic.Int64

// castagnoliTable is hash/crc32's table, built on first use.
var castagnoliTable = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// crc32cArch is crc32cUpdate: in software until softSumLimit bytes, then
// with hash/crc32.
func crc32cArch(crc uint32, p []byte) uint32 {
	if softSummed.Load() >= softSumLimit {
		return crc32.Update(crc, castagnoliTable(), p)
	}
	softSummed.Add(int64(len(p)))
	return crc32cSoft(crc, p)
}
