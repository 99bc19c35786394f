package filelock

import (
	"hash/crc32"
	"sync"
	"sync/atomic"
)

// The registry's checksums are CRC-32C (Castagnoli), see docs/format.md.
//
// hash/crc32 computes CRC-32C with the CPU's CRC instruction, but its first
// use builds tables for that path: on amd64 it checksums about 1.5 MB to
// do so, some 0.25 ms. A short-lived process such as 'lockdir lock'
// checksums only the registry's header, its journal and a page, about
// 8 KiB, and that table alone cost it a fifth of its own start-up (issue
// 12). So checksums start in software, with a 1 KiB table built in about a
// microsecond, and only a process that has checksummed softSumLimit bytes,
// and so is likely to go on (a long-lived Manager allocating, a check of a
// large registry), switches to hash/crc32 and pays for its tables once.
// Both give the same sums, which TestCRC32C checks.

// softSumLimit is how many bytes a process checksums in software before
// it switches to hash/crc32: about the cost of hash/crc32's set-up, at a
// byte a nanosecond.
const softSumLimit = 256 << 10

var (
	// softSummed counts the bytes checksummed in software, up to
	// softSumLimit. Like hash/crc32's own tables, it is process-wide and
	// changes only speed, never a result.
	softSummed atomic.Int64

	// castagnoliSoft is the byte-at-a-time table of the reflected
	// Castagnoli polynomial.
	castagnoliSoft = makeCastagnoliSoft()
)

// castagnoliHW is hash/crc32's table, built on first use.
var castagnoliHW = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

func makeCastagnoliSoft() *[256]uint32 {
	var t [256]uint32
	for i := range t {
		c := uint32(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ crc32.Castagnoli
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return &t
}

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

// crc32cSoft is crc32cUpdate in software.
func crc32cSoft(crc uint32, p []byte) uint32 {
	crc = ^crc
	for _, b := range p {
		crc = castagnoliSoft[byte(crc)^b] ^ crc>>8
	}
	return ^crc
}
