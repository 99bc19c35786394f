//go:build gc && !purego

package filelock

// haveCRC32Instr says that the CPU has SSE4.2, and so crc32cInstr can run.
var haveCRC32Instr = cpuHasSSE42()

// crc32cArch is crc32cUpdate's way: the CRC32 instruction if the CPU has
// it, else software.
var crc32cArch = pickCRC32C(haveCRC32Instr)

// pickCRC32C returns crc32cInstr with SSE4.2, else crc32cSoft.
func pickCRC32C(sse42 bool) func(uint32, []byte) uint32 {
	if sse42 {
		return crc32cInstr
	}
	return crc32cSoft
}

// crc32cInstr is crc32cUpdate with SSE4.2's CRC32 instruction.
func crc32cInstr(crc uint32, p []byte) uint32 {
	raceReadSlice(p) // the assembly's reads, which the race detector cannot see
	r := ^crc
	for len(p) >= 3*crcStripe {
		a, b, c := crc32cStripes(r, p[:3*crcStripe])
		r = crcShift(crcShift(a)^b) ^ c
		p = p[3*crcStripe:]
	}
	return ^crc32cWords(r, p)
}

// crcShift returns the CRC register r after crcStripe zero bytes: the
// register is linear in its start and in the data, so the register after
// stripes A, B is crcShift(register after A) ^ (B's sum from zero).
func crcShift(r uint32) uint32 {
	t := &castagnoliShift
	return t[0][byte(r)] ^ t[1][byte(r>>8)] ^ t[2][byte(r>>16)] ^ t[3][r>>24]
}

// cpuHasSSE42 reports CPUID's SSE4.2 bit (leaf 1, ECX bit 20). It costs
// one CPUID, about 1 us in a virtual machine, where CPUID traps to the
// hypervisor.
func cpuHasSSE42() bool

// crc32cWords returns the CRC register r after p, eight bytes at a time:
// the sum without the inversions at its start and end.
//
//go:noescape
func crc32cWords(r uint32, p []byte) uint32

// crc32cStripes returns the CRC registers after each third of p, which is
// 3*crcStripe bytes long: the first from r, the others from zero.
//
//go:noescape
func crc32cStripes(r uint32, p []byte) (a, b, c uint32)
