package filelock

// The registry's checksums are CRC-32C (Castagnoli), see docs/format.md.
//
// On amd64 they are computed with SSE4.2's CRC32 instruction
// (crc_amd64.s), about as fast as hash/crc32 and ten times as fast as
// software, with no set-up but a CPUID at package init. hash/crc32 uses
// the same instruction, but its package init builds a table that lockdir
// never uses, and its first CRC-32C on amd64 builds more, by checksumming
// about 1.5 MB: some 0.25 ms, once a fifth of 'lockdir lock''s own
// start-up (issue 12). Without hash/crc32 in the binary, that start-up is
// about 2% cheaper again (docs/performance.md, "Round six"). On an amd64
// CPU without SSE4.2, sums are in software: slicing-by-8, about 1.4 GB/s
// (BenchmarkCRC32C), from tables compiled into the binary (crc_table.go).
// Other architectures, and builds with the purego tag or without the gc
// toolchain, start in software and switch to hash/crc32 once a process
// has summed 256 KiB (crc_other.go). TestCRC32C checks each way against
// hash/crc32.

// crcStripe is the length of each of the three stripes that crc32cInstr
// sums at once. The CRC32 instruction takes three cycles to give its
// result but can start one each cycle, so three sums of independent data
// run in the time of one; the stripes' sums are then joined with
// castagnoliShift. 680 bytes make two stripe triples of a registry page's
// 4,092 checksummed bytes, with 12 left over, and of a journal record's
// 4,096-byte page image, with 16.
const crcStripe = 680

// crc32c returns the CRC-32C of p.
func crc32c(p []byte) uint32 { return crc32cUpdate(0, p) }

// crc32cUpdate returns the CRC-32C of the data summed into crc followed by p.
func crc32cUpdate(crc uint32, p []byte) uint32 { return crc32cArch(crc, p) }

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
