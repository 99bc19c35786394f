//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lockdir/lockdir/lock"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzParseRegistry")

// fuzzSeeds returns valid registries of several capacities, with and
// without a pending journal record, and truncated ones.
func fuzzSeeds(t testing.TB) map[string][]byte {
	tt := t
	seeds := map[string][]byte{
		"empty-1":   newRegistry(1, nil),
		"full-64":   newRegistry(64, []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63}),
		"some-2048": newRegistry(DefaultNumLocks, []uint32{0, 5, 2047}),
	}
	journaled := newRegistry(bitsPerPage+100, []uint32{1, bitsPerPage + 99})
	applyUpdate(tt, journaled, 3, true, true)
	seeds["journal-done-2pages"] = slices.Clone(journaled)
	applyUpdate(tt, journaled, bitsPerPage+5, true, false)
	seeds["journal-pending-2pages"] = slices.Clone(journaled)
	pending := newRegistry(100, []uint32{0})
	applyUpdate(tt, pending, 0, false, false)
	seeds["journal-pending-free-100"] = pending
	seeds["truncated-header"] = newRegistry(100, nil)[:pageSize]
	seeds["truncated-page"] = newRegistry(100, []uint32{4})[:pagesOff+100]
	seeds["truncated-empty"] = nil
	return seeds
}

// TestFuzzSeedsCurrent checks that the committed seed corpus is what
// fuzzSeeds generates, so that it follows format changes; run with
// -update-seeds to rewrite it.
func TestFuzzSeedsCurrent(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseRegistry")
	for name, b := range fuzzSeeds(t) {
		path := filepath.Join(dir, name)
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("seed %s is missing or stale (%v); run go test -run TestFuzzSeedsCurrent -update-seeds", path, err)
		}
	}
}

// FuzzParseRegistry feeds arbitrary bytes to the registry decoder: it must
// never panic, and every error must match lock.ErrCorrupt.
func FuzzParseRegistry(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseRegistry(b)
		if err != nil {
			if !errors.Is(err, lock.ErrCorrupt) {
				t.Fatalf("parseRegistry: %v, not ErrCorrupt", err)
			}
			return
		}
		verr := v.verify()
		if verr != nil && !errors.Is(verr, lock.ErrCorrupt) {
			t.Fatalf("verify: %v, not ErrCorrupt", verr)
		}
		ids, err := v.allocatedIDs()
		if err != nil && !errors.Is(err, lock.ErrCorrupt) {
			t.Fatalf("allocatedIDs: %v, not ErrCorrupt", err)
		}
		id, ok, err := v.lowestFree()
		if err != nil && !errors.Is(err, lock.ErrCorrupt) {
			t.Fatalf("lowestFree: %v, not ErrCorrupt", err)
		}
		n, cerr := v.allocatedCount()
		if cerr != nil && !errors.Is(cerr, lock.ErrCorrupt) {
			t.Fatalf("allocatedCount: %v, not ErrCorrupt", cerr)
		}
		v.maxSeq()
		if verr != nil {
			return
		}
		// A registry that verifies is self-consistent.
		if cerr != nil || n != uint32(len(ids)) {
			t.Fatalf("allocatedCount %d, %v; %d IDs allocated", n, cerr, len(ids))
		}
		if err != nil {
			t.Fatalf("lowestFree of a verified registry: %v", err)
		}
		if wid, wok := modelLowest(v.capacity, ids); ok != wok || (ok && id != wid) {
			t.Fatalf("lowestFree = %d %v, want %d %v", id, ok, wid, wok)
		}
		for _, id := range ids {
			if id >= v.capacity {
				t.Fatalf("ID %d allocated beyond capacity %d", id, v.capacity)
			}
		}
	})
}

// FuzzOpen opens a lock directory whose registry is the fuzz input. Open
// must fail with lock.ErrCorrupt and leave the file alone, or succeed with
// a usable manager.
func FuzzOpen(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	dir := filepath.Join(f.TempDir(), "locks")
	if err := os.Mkdir(dir, 0o700); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, masterName), nil, 0o600); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(dir, registryName)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := Open(dir)
		if err != nil {
			if !errors.Is(err, lock.ErrCorrupt) {
				t.Fatalf("Open: %v, not ErrCorrupt", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, b) {
				t.Fatal("a failed Open changed the registry")
			}
			return
		}
		defer m.Close()
		ids, err := m.Allocated()
		if err != nil {
			t.Fatalf("Allocated after a successful Open: %v", err)
		}
		capacity, err := m.Capacity()
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.AllocateLock()
		switch {
		case errors.Is(err, lock.ErrNoFreeLocks) && len(ids) == int(capacity):
		case err != nil:
			t.Fatalf("AllocateLock: %v", err)
		default:
			if wid, _ := modelLowest(capacity, ids); l.ID() != wid {
				t.Fatalf("AllocateLock = %d, want %d", l.ID(), wid)
			}
			ids = slices.Sorted(slices.Values(append(ids, l.ID())))
		}
		m2, err := Open(dir)
		if err != nil {
			t.Fatalf("reopening: %v", err)
		}
		defer m2.Close()
		if got, err := m2.Allocated(); err != nil || !slices.Equal(got, ids) {
			t.Fatalf("after reopening: %v, %v; want %v", got, err, ids)
		}
	})
}
