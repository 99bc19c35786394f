package filelock

// The registry's checksums are CRC-32C (Castagnoli), see docs/format.md.
//
// They are computed in software, slicing-by-8 (about 1.3 GB/s here), from
// tables compiled into the binary (crc_table.go). hash/crc32 would use the
// CPU's CRC instruction, but its package set-up runs in every process that
// links it, and its first CRC-32C sum builds tables for that path: on
// amd64 it checksums about 1.5 MB to do so, some 0.25 ms. A short-lived
// process such as 'lockdir lock' checksums only the registry's header, and
// an allocation or a free a page or two, so that set-up was a fifth of its
// own start-up (issue 12); even a check of the largest registry, 2 MB,
// takes under 2 ms in software. TestCRC32C checks the sums against
// hash/crc32's.

// crc32c returns the CRC-32C of p.
func crc32c(p []byte) uint32 { return crc32cUpdate(0, p) }

// crc32cUpdate returns the CRC-32C of the data summed into crc followed by
// p, eight bytes at a time.
func crc32cUpdate(crc uint32, p []byte) uint32 {
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
