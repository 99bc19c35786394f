package filelock

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestCRC32C checks the software CRC-32C against hash/crc32's, whole and
// in pieces, at lengths around the registry's header, journal and pages.
func TestCRC32C(t *testing.T) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, hdrCRC, journalLen, pageSize - pgIndex, pageSize, journalLen + pageSize, 3*pageSize + 5} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		want := crc32.Checksum(p, tab)
		if got := crc32cSoft(0, p); got != want {
			t.Errorf("crc32cSoft of %d bytes = %#08x, want %#08x", n, got, want)
		}
		cut := n / 3
		if got := crc32cSoft(crc32cSoft(0, p[:cut]), p[cut:]); got != want {
			t.Errorf("crc32cSoft of %d bytes in two pieces = %#08x, want %#08x", n, got, want)
		}
		if got := crc32cUpdate(crc32c(p[:cut]), p[cut:]); got != want {
			t.Errorf("crc32cUpdate of %d bytes = %#08x, want %#08x", n, got, want)
		}
	}
	// The known answer for "123456789" (RFC 3720, appendix B.4).
	if got := crc32cSoft(0, []byte("123456789")); got != 0xe3069283 {
		t.Errorf("crc32cSoft(\"123456789\") = %#08x, want 0xe3069283", got)
	}
}

// TestCRC32CSwitchesToHardware checks that the software sums stop once
// softSumLimit bytes have been summed, and that the sums stay the same.
func TestCRC32CSwitchesToHardware(t *testing.T) {
	saved := softSummed.Load()
	t.Cleanup(func() { softSummed.Store(saved) })
	softSummed.Store(0)
	p := make([]byte, softSumLimit/4+1)
	for i := range p {
		p[i] = byte(i * 7)
	}
	want := crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli))
	for i := 0; i < 6; i++ {
		if got := crc32c(p); got != want {
			t.Fatalf("sum %d = %#08x, want %#08x", i, got, want)
		}
	}
	if got := softSummed.Load(); got < softSumLimit || got > softSumLimit+int64(len(p)) {
		t.Errorf("after 6 sums of %d bytes, %d bytes summed in software, want %d to %d (the switch at %d)",
			len(p), got, softSumLimit, softSumLimit+int64(len(p)), softSumLimit)
	}
}
