//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lockdir/lockdir/lock"
)

// modelLowest returns the lowest ID below capacity not in ids (sorted).
func modelLowest(capacity uint32, ids []uint32) (uint32, bool) {
	var want uint32
	for _, id := range ids {
		if id != want {
			break
		}
		want++
	}
	return want, want < capacity
}

func checkView(t *testing.T, b []byte, capacity uint32, ids []uint32) {
	t.Helper()
	v, err := parseRegistry(b)
	if err != nil {
		t.Fatalf("capacity %d: %v", capacity, err)
	}
	if err := v.verify(); err != nil {
		t.Fatalf("capacity %d: verify: %v", capacity, err)
	}
	if v.capacity != capacity || v.pages != pagesFor(capacity) {
		t.Fatalf("capacity %d pages %d, want %d and %d", v.capacity, v.pages, capacity, pagesFor(capacity))
	}
	got, err := v.allocatedIDs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ids) && (len(got) != 0 || len(ids) != 0) {
		t.Fatalf("capacity %d: allocated %v, want %v", capacity, trim(got), trim(ids))
	}
	n, err := v.allocatedCount()
	if err != nil || n != uint32(len(ids)) {
		t.Fatalf("capacity %d: allocatedCount %d, %v; want %d", capacity, n, err, len(ids))
	}
	id, ok, err := v.lowestFree()
	wid, wok := modelLowest(capacity, ids)
	if err != nil || ok != wok || (ok && id != wid) {
		t.Fatalf("capacity %d: lowestFree %d %v %v, want %d %v", capacity, id, ok, err, wid, wok)
	}
	for _, id := range ids[:min(len(ids), 100)] {
		if set, err := v.isSet(id); err != nil || !set {
			t.Fatalf("isSet(%d) = %v, %v", id, set, err)
		}
	}
}

func trim(ids []uint32) any {
	if len(ids) > 12 {
		return fmt.Sprintf("%v... (%d)", ids[:12], len(ids))
	}
	return ids
}

func TestRegistryRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for _, capacity := range []uint32{1, 2, 63, 64, 65, bitsPerPage - 1, bitsPerPage, bitsPerPage + 1, 3*bitsPerPage + 7, MaxLocks} {
		sets := [][]uint32{nil, {0}, {capacity - 1}}
		var random []uint32
		for range 50 {
			random = append(random, r.Uint32N(capacity))
		}
		slices.Sort(random)
		sets = append(sets, slices.Compact(random))
		if capacity <= 2*bitsPerPage {
			full := make([]uint32, capacity)
			for i := range full {
				full[i] = uint32(i)
			}
			sets = append(sets, full, full[:len(full)/2])
		}
		for _, ids := range sets {
			b := newRegistry(capacity, ids)
			if int64(len(b)) != registrySize(capacity) {
				t.Fatalf("capacity %d: %d bytes, want %d", capacity, len(b), registrySize(capacity))
			}
			checkView(t, b, capacity, ids)
		}
	}
}

// applyUpdate does what an update does, on bytes: redo a pending journal
// record, write the new journal record, then the page. With pageToo false
// it stops after the journal, as a process killed in between would.
func applyUpdate(t testing.TB, b []byte, id uint32, alloc bool, pageToo bool) {
	t.Helper()
	v, err := parseRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	if v.journal != nil {
		copy(b[pageOffset(v.jpage):], v.journal)
		if v, err = parseRegistry(b); err != nil {
			t.Fatal(err)
		}
	}
	p, err := v.updatedPage(id, alloc, v.maxSeq()+1)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[journalOff:], journalRecord(id/bitsPerPage, p))
	if pageToo {
		copy(b[pageOffset(id/bitsPerPage):], p)
	}
}

func TestRegistryUpdates(t *testing.T) {
	t.Parallel()
	const capacity = 2*bitsPerPage + 100
	b := newRegistry(capacity, nil)
	model := map[uint32]bool{}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		id := r.Uint32N(capacity)
		if i%3 == 0 {
			id, _ = modelLowest(capacity, sortedKeys(model))
		}
		applyUpdate(t, b, id, !model[id], i%2 == 0)
		model[id] = !model[id]
		if !model[id] {
			delete(model, id)
		}
		checkView(t, b, capacity, sortedKeys(model))
	}
	v, _ := parseRegistry(b)
	for id := range model {
		if _, err := v.updatedPage(id, true, 1); !errors.Is(err, errAlreadySet) {
			t.Errorf("updatedPage(%d, alloc) of a set bit: %v", id, err)
		}
		break
	}
	if _, err := v.updatedPage(capacity-1, false, 1); !model[capacity-1] && !errors.Is(err, errAlreadyClear) {
		t.Errorf("updatedPage(clear) of a clear bit: %v", err)
	}
}

func sortedKeys(m map[uint32]bool) []uint32 {
	var ids []uint32
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func TestJournalRecovery(t *testing.T) {
	t.Parallel()
	const capacity = bitsPerPage + 10 // two pages
	base := func() []byte {
		b := newRegistry(capacity, []uint32{1, bitsPerPage + 2})
		applyUpdate(t, b, 3, true, true) // an older, complete update
		return b
	}
	for _, tc := range []struct {
		name   string
		mutate func(b []byte)
		want   []uint32
	}{
		{"complete", func(b []byte) {}, []uint32{1, 3, bitsPerPage + 2}},
		{"journal written, page not", func(b []byte) {
			applyUpdate(t, b, 5, true, false)
		}, []uint32{1, 3, 5, bitsPerPage + 2}},
		{"journal written, page torn", func(b []byte) {
			applyUpdate(t, b, 5, true, false)
			copy(b[pageOffset(0)+100:], bytes.Repeat([]byte{0xff}, 50))
		}, []uint32{1, 3, 5, bitsPerPage + 2}},
		{"journal for page 1 written, page not", func(b []byte) {
			applyUpdate(t, b, bitsPerPage+2, false, false)
		}, []uint32{1, 3}},
		{"journal torn (bad CRC)", func(b []byte) {
			applyUpdate(t, b, 5, true, false)
			b[journalOff+journalLen+pageSize-1] ^= 1
		}, []uint32{1, 3, bitsPerPage + 2}},
		{"journal torn in its header", func(b []byte) {
			applyUpdate(t, b, 5, true, false)
			b[journalOff+8] ^= 1
		}, []uint32{1, 3, bitsPerPage + 2}},
		{"journal half written", func(b []byte) {
			old := slices.Clone(b)
			applyUpdate(t, b, 5, true, false)
			// The tear is in the image's header, before its count.
			copy(b[journalOff+journalLen+16:journalOff+journalLen+pageSize], old[journalOff+journalLen+16:])
		}, []uint32{1, 3, bitsPerPage + 2}},
		{"journal older than its page", func(b []byte) {
			applyUpdate(t, b, 3, false, true)
			// Put back the journal of the allocation of 3, which is
			// older than the page now.
			rec := slices.Clone(base()[journalOff : journalOff+journalLen+pageSize])
			copy(b[journalOff:], rec)
		}, []uint32{1, bitsPerPage + 2}},
		{"journal for a page that does not exist", func(b []byte) {
			v, _ := parseRegistry(b)
			p, _ := v.updatedPage(5, true, v.maxSeq()+1)
			le.PutUint32(p[4:], 7)
			sealPage(p)
			copy(b[journalOff:], journalRecord(7, p))
		}, []uint32{1, 3, bitsPerPage + 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := base()
			tc.mutate(b)
			checkView(t, b, capacity, tc.want)

			// Open sees the same, and redoes the journal so that the
			// pages alone say it.
			dir := tmpDir(t)
			writeRegistry(t, dir, b)
			m, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, err := m.Allocated()
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Allocated = %v, %v; want %v", got, err, tc.want)
			}
			disk, err := os.ReadFile(filepath.Join(dir, registryName))
			if err != nil {
				t.Fatal(err)
			}
			clear(disk[journalOff:pagesOff]) // forget the journal
			checkView(t, disk, capacity, tc.want)
			// And the next update builds on it.
			l, err := m.AllocateLock()
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Sorted(slices.Values(append(slices.Clone(tc.want), l.ID())))
			if lw, _ := modelLowest(capacity, tc.want); l.ID() != lw {
				t.Errorf("AllocateLock = %d, want %d", l.ID(), lw)
			}
			m2, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			if got, err := m2.Allocated(); err != nil || !slices.Equal(got, want) {
				t.Errorf("after AllocateLock: %v, %v; want %v", got, err, want)
			}
		})
	}
}

func tmpDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "locks")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, masterName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeRegistry(t *testing.T, dir string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, registryName), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func resealHeader(b []byte) {
	le.PutUint32(b[28:], crc32c(b[:28]))
}

// checkCorrupt opens dir and checks that it fails with lock.ErrCorrupt
// inside an *fs.PathError naming the registry, leaving the file as it was.
func checkCorrupt(t *testing.T, dir string, what string) {
	t.Helper()
	path := filepath.Join(dir, registryName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, open := range []func() (*Manager, error){
		func() (*Manager, error) { return Open(dir) },
		func() (*Manager, error) { return OpenOrCreate(dir, 10) },
	} {
		m, err := open()
		if err == nil {
			m.Close()
			t.Errorf("%s: Open succeeded", what)
			return
		}
		var pe *fs.PathError
		if !errors.Is(err, lock.ErrCorrupt) || !errors.As(err, &pe) || pe.Path != path {
			t.Errorf("%s: Open: %v; want lock.ErrCorrupt in an *fs.PathError naming %s", what, err, path)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("%s: a failed Open changed the registry", what)
	}
}

// corruptBase is a two-page registry with allocations on both pages, the
// last update (on page 1) still in the journal.
func corruptBase(t *testing.T) (b []byte, capacity uint32, ids []uint32) {
	capacity = bitsPerPage + 100
	b = newRegistry(capacity, []uint32{0, 1, 2, 40})
	applyUpdate(t, b, 7, true, true)
	applyUpdate(t, b, bitsPerPage+50, true, true)
	return b, capacity, []uint32{0, 1, 2, 7, 40, bitsPerPage + 50}
}

func TestOpenCorrupt(t *testing.T) {
	t.Parallel()
	good, capacity, _ := corruptBase(t)
	size := len(good)
	type mutation struct {
		name string
		fn   func(b []byte) []byte
	}
	ms := []mutation{
		{"zero-length", func(b []byte) []byte { return nil }},
		{"one byte", func(b []byte) []byte { return b[:1] }},
		{"header only", func(b []byte) []byte { return b[:pageSize] }},
		{"no pages", func(b []byte) []byte { return b[:pagesOff] }},
		{"last page missing", func(b []byte) []byte { return b[:size-pageSize] }},
		{"last byte missing", func(b []byte) []byte { return b[:size-1] }},
		{"a byte too many", func(b []byte) []byte { return append(b, 0) }},
		{"a page too many", func(b []byte) []byte { return append(b, make([]byte, pageSize)...) }},
		{"huge", func(b []byte) []byte { return append(b, make([]byte, registrySize(MaxLocks))...) }},
		{"all zero", func(b []byte) []byte { return make([]byte, len(b)) }},
		{"wrong magic", func(b []byte) []byte { copy(b, "LOCKDIX\x00"); resealHeader(b); return b }},
		{"wrong version", func(b []byte) []byte { le.PutUint32(b[8:], 2); resealHeader(b); return b }},
		{"version 0", func(b []byte) []byte { le.PutUint32(b[8:], 0); resealHeader(b); return b }},
		{"wrong page size", func(b []byte) []byte { le.PutUint32(b[12:], 8192); resealHeader(b); return b }},
		{"unknown flags", func(b []byte) []byte { le.PutUint32(b[24:], 1); resealHeader(b); return b }},
		{"header padding", func(b []byte) []byte { b[1000] = 1; return b }},
		{"capacity 0", func(b []byte) []byte { le.PutUint32(b[16:], 0); resealHeader(b); return b }},
		{"capacity over MaxLocks", func(b []byte) []byte {
			le.PutUint32(b[16:], MaxLocks+1)
			le.PutUint32(b[20:], pagesFor(MaxLocks+1))
			resealHeader(b)
			return b
		}},
		{"capacity disagrees with file size", func(b []byte) []byte {
			le.PutUint32(b[16:], 3*bitsPerPage)
			le.PutUint32(b[20:], 3)
			resealHeader(b)
			return b
		}},
		{"capacity smaller than file", func(b []byte) []byte {
			le.PutUint32(b[16:], 100)
			le.PutUint32(b[20:], 1)
			resealHeader(b)
			return b
		}},
		{"page count disagrees with capacity", func(b []byte) []byte { le.PutUint32(b[20:], 3); resealHeader(b); return b }},
		{"page checksum", func(b []byte) []byte { b[pageOffset(0)] ^= 1; return b }},
		{"page index", func(b []byte) []byte {
			p := b[pageOffset(0):]
			le.PutUint32(p[4:], 1)
			sealPage(p)
			return b
		}},
		{"page reserved bytes", func(b []byte) []byte {
			p := b[pageOffset(0):]
			p[25] = 1
			sealPage(p)
			return b
		}},
		{"page count mismatch", func(b []byte) []byte {
			p := b[pageOffset(0):]
			le.PutUint32(p[16:], 4)
			sealPage(p)
			return b
		}},
		{"page count mismatch, full", func(b []byte) []byte {
			p := b[pageOffset(0):]
			le.PutUint32(p[16:], bitsPerPage)
			sealPage(p)
			return b
		}},
		{"bit beyond capacity", func(b []byte) []byte {
			p := b[pageOffset(1):]
			setBit(p, 200)
			le.PutUint32(p[16:], popcount(p))
			sealPage(p)
			clear(b[journalOff:pagesOff]) // else the journal stands in for page 1
			return b
		}},
	}
	dir := tmpDir(t)
	for _, m := range ms {
		writeRegistry(t, dir, m.fn(slices.Clone(good)))
		checkCorrupt(t, dir, m.name)
	}
	_ = capacity
}

// TestOpenBitFlips flips bits throughout a registry and checks, region by
// region, what Open must make of it.
func TestOpenBitFlips(t *testing.T) {
	t.Parallel()
	good, _, ids := corruptBase(t)
	v, err := parseRegistry(good)
	if err != nil || v.jseq == 0 {
		t.Fatalf("base registry: %v, journal seq %d", err, v.jseq)
	}
	jpage := le.Uint32(good[journalOff+4:])
	if jpage != 1 {
		t.Fatalf("journal is for page %d, want 1", jpage)
	}
	var offsets []int
	add := func(from, to, step int) {
		for off := from; off < to; off += step {
			offsets = append(offsets, off)
		}
	}
	add(0, headerLen, 1)                                            // header fields
	add(headerLen, pageSize, 509)                                   // header padding
	add(journalOff, journalOff+journalLen, 1)                       // journal record header
	add(journalOff+journalLen, journalOff+journalLen+pageSize, 211) // journal image
	add(journalOff+journalLen+pageSize, pagesOff, 97)               // past the journal record
	for i := range uint32(2) {
		p := int(pageOffset(i))
		add(p, p+pageHdrLen, 1)            // page header
		add(p+pageHdrLen, p+pageSize, 173) // bitmap
		offsets = append(offsets, p+pageHdrLen, p+pageHdrLen+7, p+pageSize-1)
	}
	dir := tmpDir(t)
	path := filepath.Join(dir, registryName)
	var corrupt, fine int
	for _, off := range offsets {
		for _, bit := range []byte{0x01, 0x80} {
			b := slices.Clone(good)
			b[off] ^= bit
			writeRegistry(t, dir, b)
			what := fmt.Sprintf("bit %#x of byte %d", bit, off)
			switch {
			case off < pageSize, off >= int(pageOffset(0)) && off < int(pageOffset(1)):
				// The header and page 0 have no other copy.
				checkCorrupt(t, dir, what)
				corrupt++
			default:
				// The journal only repeats page 1, so a flip there
				// invalidates it harmlessly; a flip in page 1 is
				// repaired from the journal; the rest is unused.
				m, err := Open(dir)
				if err != nil {
					t.Errorf("%s: Open: %v", what, err)
					continue
				}
				got, err := m.Allocated()
				m.Close()
				if err != nil || !slices.Equal(got, ids) {
					t.Errorf("%s: Allocated = %v, %v; want %v", what, got, err, ids)
				}
				after, _ := os.ReadFile(path)
				if err := verifyBytes(after); err != nil {
					t.Errorf("%s: after Open the registry does not verify: %v", what, err)
				}
				fine++
			}
		}
	}
	t.Logf("%d flips refused as corrupt, %d harmless or repaired", corrupt, fine)
}

func verifyBytes(b []byte) error {
	v, err := parseRegistry(b)
	if err != nil {
		return err
	}
	return v.verify()
}

// TestAllocateAcrossPages starts from a registry whose first page is full:
// AllocateLock goes on in the second, and comes back to the first when an
// ID there is freed.
func TestAllocateAcrossPages(t *testing.T) {
	t.Parallel()
	ids := make([]uint32, 0, bitsPerPage+1)
	for id := range uint32(bitsPerPage) {
		ids = append(ids, id)
	}
	ids = append(ids, bitsPerPage+1)
	dir := tmpDir(t)
	writeRegistry(t, dir, newRegistry(2*bitsPerPage+10, ids))
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, want := range []uint32{bitsPerPage, bitsPerPage + 2} {
		if l, err := m.AllocateLock(); err != nil || l.ID() != want {
			t.Fatalf("AllocateLock = %v, %v; want %d", l, err, want)
		}
	}
	if err := m.locker(100).Free(); err != nil {
		t.Fatal(err)
	}
	if l, err := m.AllocateLock(); err != nil || l.ID() != 100 {
		t.Fatalf("AllocateLock = %v, %v; want 100", l, err)
	}
	if n, err := m.AvailableLocks(); err != nil || *n != 2*bitsPerPage+10-uint32(len(ids))-2 {
		t.Errorf("AvailableLocks = %v, %v", n, err)
	}
}

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
