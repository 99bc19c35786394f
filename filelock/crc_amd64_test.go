//go:build gc && !purego

package filelock

import (
	"bytes"
	"os"
	"os/exec"
	"reflect"
	"runtime"
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

// TestPickCRC32C checks which way each CPU gets.
func TestPickCRC32C(t *testing.T) {
	for _, tc := range []struct {
		sse42 bool
		want  func(uint32, []byte) uint32
		name  string
	}{{true, crc32cInstr, "crc32cInstr"}, {false, crc32cSoft, "crc32cSoft"}} {
		if !sameFunc(pickCRC32C(tc.sse42), tc.want) {
			t.Errorf("pickCRC32C(%v) is not %s", tc.sse42, tc.name)
		}
	}
}

// TestCRC32CInstrUsed checks CPUID's answer against another source, and
// that crc32cUpdate then sums the way it says: with the CRC instruction
// if the CPU has SSE4.2, in software if not. The other source is
// $LOCKDIR_TEST_SSE42 (0 or 1) if set, which TestCRC32CWithoutSSE42 sets
// for an emulated CPU, else Linux's /proc/cpuinfo (its sse4_2 flag).
// Without this test, a CPUID check that always failed would go unseen: the
// software sums are the same, only slower.
func TestCRC32CInstrUsed(t *testing.T) {
	var want bool
	switch v := os.Getenv("LOCKDIR_TEST_SSE42"); {
	case v == "0" || v == "1":
		want = v == "1"
	case runtime.GOOS == "linux":
		info, err := os.ReadFile("/proc/cpuinfo")
		if err != nil {
			t.Skipf("no other source than CPUID: %v", err)
		}
		want = bytes.Contains(info, []byte(" sse4_2"))
	default:
		t.Skip("no other source than CPUID: set LOCKDIR_TEST_SSE42 to 0 or 1")
	}
	if haveCRC32Instr != want {
		t.Errorf("CPUID says SSE4.2 %v; the other source says %v", haveCRC32Instr, want)
	}
	if !sameFunc(crc32cArch, pickCRC32C(want)) {
		t.Errorf("crc32cUpdate does not sum the way pickCRC32C(%v) picks", want)
	}
	// On a CPU without SSE4.2, the instruction would be SIGILL here.
	if got := crc32cUpdate(0, []byte("123456789")); got != 0xe3069283 {
		t.Errorf("crc32cUpdate(\"123456789\") = %#08x, want 0xe3069283", got)
	}
}

// TestCRC32CWithoutSSE42 runs TestCRC32CInstrUsed on an emulated CPU that
// has SSE4.1 but not SSE4.2 (qemu-x86_64 -cpu Penryn), where only the
// software sums can run: a CPUID check of the wrong bit would find SSE4.2
// there, and the instruction would die of SIGILL. (TestCRC32C checks the
// software sums natively.) It skips without qemu-x86_64 (Debian's
// qemu-user, which .ci/run installs).
func TestCRC32CWithoutSSE42(t *testing.T) {
	if os.Getenv("LOCKDIR_TEST_SSE42") != "" {
		t.Skip("already on the emulated CPU")
	}
	qemu, err := exec.LookPath("qemu-x86_64")
	if err != nil {
		t.Skip("needs qemu-x86_64 (qemu-user)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(qemu, "-cpu", "Penryn", exe, "-test.run", "^(TestCRC32CInstrUsed|TestCRC32CInstr)$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "LOCKDIR_TEST_SSE42=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the checksum tests on a CPU without SSE4.2: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("--- SKIP: TestCRC32CInstr ")) || !bytes.Contains(out, []byte("--- PASS: TestCRC32CInstrUsed")) {
		t.Errorf("on a CPU without SSE4.2, TestCRC32CInstr should skip and TestCRC32CInstrUsed pass:\n%s", out)
	}
}

// sameFunc reports whether f and g are the same function.
func sameFunc(f, g func(uint32, []byte) uint32) bool {
	return reflect.ValueOf(f).Pointer() == reflect.ValueOf(g).Pointer()
}
