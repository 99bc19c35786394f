//go:build !amd64 || !gc || purego

package filelock

import (
	"hash/crc32"
	"testing"
)

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
