//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"math/rand/v2"
	"testing"
)

// firstSetFromSlow is the bit-at-a-time definition of firstSetFrom.
func firstSetFromSlow(p []byte, from uint32) uint32 {
	for b := from; b < bitsPerPage; b++ {
		if testBit(p, b) {
			return b
		}
	}
	return bitsPerPage
}

func TestFirstSetFrom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	edges := []uint32{0, 1, 7, 8, 63, 64, 65, 127, 128, 4095, 4096, 24640, bitsPerPage - 65, bitsPerPage - 64, bitsPerPage - 2, bitsPerPage - 1}
	for iter := 0; iter < 2000; iter++ {
		p := make([]byte, pageSize)
		// A few set bits, at edges or anywhere.
		for range r.IntN(4) {
			b := r.Uint32N(bitsPerPage)
			if r.IntN(2) == 0 {
				b = edges[r.IntN(len(edges))]
			}
			setBit(p, b)
		}
		from := r.Uint32N(bitsPerPage)
		if r.IntN(2) == 0 {
			from = edges[r.IntN(len(edges))]
		}
		if got, want := firstSetFrom(p, from), firstSetFromSlow(p, from); got != want {
			t.Fatalf("firstSetFrom(page, %d) = %d, want %d", from, got, want)
		}
	}
}

// TestCheckPageBeyondCapacity checks that a bit past the capacity is
// reported, naming the first such lock, and that bits below it are not.
func TestCheckPageBeyondCapacity(t *testing.T) {
	for _, capacity := range []uint32{1, 63, 64, 65, 4096, bitsPerPage - 1, bitsPerPage + 100, 1_000_000} {
		last := pagesFor(capacity) - 1
		limit := capacity - last*bitsPerPage
		for _, b := range []uint32{limit, limit + 1, limit + 63, limit + 64, bitsPerPage - 1} {
			if b >= bitsPerPage {
				continue
			}
			img := newRegistry(capacity, []uint32{last*bitsPerPage + limit - 1})
			p := img[pageOffset(last) : pageOffset(last)+pageSize]
			if err := checkPage(p, last, capacity); err != nil {
				t.Fatalf("capacity %d: valid page: %v", capacity, err)
			}
			setBit(p, b)
			le.PutUint32(p[16:], popcount(p))
			sealPage(p)
			if err := checkPage(p, last, capacity); err == nil {
				t.Errorf("capacity %d: bit %d beyond the capacity not reported", capacity, b)
			}
		}
	}
}
