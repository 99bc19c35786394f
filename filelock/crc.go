package filelock

import (
	"hash/crc32"
	"sync"
	"sync/atomic"
)

// The registry's checksums are CRC-32C (Castagnoli), see docs/format.md.
//
// hash/crc32 computes CRC-32C with the CPU's CRC instruction, about 12
// times as fast as software here, but its first use builds tables for
// that path: on amd64 it checksums about 1.5 MB to do so, some 0.25 ms. A
// short-lived process such as 'lockdir lock' checksums only the registry,
// about 16 KiB, and that set-up alone was a fifth of its own start-up
// (issue 12). So checksums start in software (slicing-by-8, about
// 1.4 GB/s, BenchmarkCRC32C), from tables compiled into the binary
// (crc_table.go), and only a process that has checksummed softSumLimit
// bytes, and so is likely to go on (a long-lived Manager allocating, a
// check of a large registry), switches to hash/crc32 and pays for its
// set-up once. Both give the same sums, which TestCRC32C checks. Summing
// everything in software doubled the cost of AllocateLock+Free.

// softSumLimit is how many bytes a process checksums in software before
// it switches to hash/crc32: in software they cost about what hash/crc32's
// set-up does.
const softSumLimit = 256 << 10

// softSummed counts the bytes checksummed in software, up to softSumLimit.
// Like hash/crc32's own tables, it is process-wide and changes only speed,
// never a result.
var softSummed atomic.Int64

// castagnoliHW is hash/crc32's table, built on first use.
var castagnoliHW = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// crc32c returns the CRC-32C of p.
func crc32c(p []byte) uint32 { return crc32cUpdate(0, p) }

// crc32cUpdate returns the CRC-32C of the data summed into crc followed by p.
func crc32cUpdate(crc uint32, p []byte) uint32 {
	if softSummed.Load() >= softSumLimit {
		return crc32.Update(crc, castagnoliHW(), p)
	}
	softSummed.Add(int64(len(p)))
	return crc32cSoft(crc, p)
}

// crc32cSoft is crc32cUpdate in software, eight bytes at a time.
func crc32cSoft(crc uint32, p []byte) uint32 {
	t := &castagnoli
	crc = ^crc
	for len(p) >= 8 {
		crc ^= le.Uint32(p)
		crc = t[7][byte(crc)] ^ t[6][byte(crc>>8)] ^ t[5][byte(crc>>16)] ^ t[4][crc>>24] ^
			t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return ^crc
}
