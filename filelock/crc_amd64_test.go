package filelock

import (
	"os"
	"testing"
)

// TestCRC32CInstr checks the sums with the CRC instruction against
// hash/crc32's.
func TestCRC32CInstr(t *testing.T) {
	if !haveCRC32Instr {
		t.Skip("this CPU has no SSE4.2")
	}
	checkCRC32C(t, "crc32cInstr", crc32cInstr)
}

// TestCRC32CInstrUsed checks that the instruction is used wherever CPUID
// says the CPU has it: on every amd64 CPU made since 2008, and so on every
// machine these tests run on, unless LOCKDIR_NO_SSE42 says the machine has
// none. Without this, a CPUID check that always failed would go unseen:
// the software sums are the same, only slower.
func TestCRC32CInstrUsed(t *testing.T) {
	if os.Getenv("LOCKDIR_NO_SSE42") != "" {
		t.Skip("LOCKDIR_NO_SSE42 is set")
	}
	if !haveCRC32Instr {
		t.Error("CPUID says this CPU has no SSE4.2: set LOCKDIR_NO_SSE42 if that is so")
	}
}
