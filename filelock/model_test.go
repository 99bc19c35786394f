//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
	"pgregory.net/rapid"
)

// TestModel checks random sequences of allocation-state changes, made
// through two Managers on one directory and with reopening, against a set
// of allocated IDs.
func TestModel(t *testing.T) {
	t.Parallel()
	const page = 32512 // IDs per bitmap page
	rapid.Check(t, func(rt *rapid.T) {
		dir := filepath.Join(tmpfsDir(t), "locks")
		capacity := rapid.SampledFrom([]uint32{1, 3, 64, 100, page + 5}).Draw(rt, "capacity")
		m, err := filelock.Create(dir, capacity)
		if err != nil {
			rt.Fatal(err)
		}
		other, err := filelock.Open(dir)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { m.Close(); other.Close() }()
		model := map[uint32]bool{}

		pickManager := func(rt *rapid.T) *filelock.Manager {
			if rapid.Bool().Draw(rt, "other") {
				return other
			}
			return m
		}
		// IDs near the interesting places: the start, page
		// boundaries, the capacity.
		drawID := func(rt *rapid.T) uint32 {
			base := rapid.SampledFrom([]uint32{0, page - 2, capacity - 2, capacity}).Draw(rt, "base")
			return base + rapid.Uint32Range(0, 4).Draw(rt, "delta")
		}
		lowest := func() (uint32, bool) {
			for id := range capacity {
				if !model[id] {
					return id, true
				}
			}
			return 0, false
		}
		check := func(rt *rapid.T, mgr *filelock.Manager) {
			got, err := mgr.Allocated()
			if err != nil {
				rt.Fatal(err)
			}
			want := make([]uint32, 0, len(model))
			for id := range model {
				want = append(want, id)
			}
			slices.Sort(want)
			if !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
				rt.Fatalf("allocated %v, model %v", got, want)
			}
			c, err := mgr.Capacity()
			if err != nil || c != capacity {
				rt.Fatalf("capacity %d, %v; model %d", c, err, capacity)
			}
			n, err := mgr.AvailableLocks()
			if err != nil || *n != capacity-uint32(len(model)) {
				rt.Fatalf("AvailableLocks %v, %v; model %d", n, err, capacity-uint32(len(model)))
			}
		}

		rt.Repeat(map[string]func(*rapid.T){
			"AllocateLock": func(rt *rapid.T) {
				l, err := pickManager(rt).AllocateLock()
				want, ok := lowest()
				switch {
				case !ok:
					if !errors.Is(err, lock.ErrNoFreeLocks) {
						rt.Fatalf("AllocateLock when full: %v", err)
					}
				case err != nil:
					rt.Fatalf("AllocateLock: %v", err)
				case l.ID() != want:
					rt.Fatalf("AllocateLock = %d, want %d", l.ID(), want)
				default:
					model[want] = true
				}
			},
			"AllocateAndRetrieveLock": func(rt *rapid.T) {
				id := drawID(rt)
				_, err := pickManager(rt).AllocateAndRetrieveLock(id)
				switch {
				case id >= capacity:
					if !errors.Is(err, lock.ErrInvalidID) {
						rt.Fatalf("AllocateAndRetrieveLock(%d), capacity %d: %v", id, capacity, err)
					}
				case model[id]:
					if !errors.Is(err, lock.ErrAllocated) {
						rt.Fatalf("AllocateAndRetrieveLock(%d) of an allocated ID: %v", id, err)
					}
				case err != nil:
					rt.Fatalf("AllocateAndRetrieveLock(%d): %v", id, err)
				default:
					model[id] = true
				}
			},
			"Free": func(rt *rapid.T) {
				id := drawID(rt)
				if len(model) > 0 && rapid.Bool().Draw(rt, "allocated") {
					ids := make([]uint32, 0, len(model))
					for id := range model {
						ids = append(ids, id)
					}
					slices.Sort(ids)
					id = rapid.SampledFrom(ids).Draw(rt, "id")
				}
				mgr := pickManager(rt)
				l, err := mgr.RetrieveLock(id)
				if id >= capacity {
					if !errors.Is(err, lock.ErrInvalidID) {
						rt.Fatalf("RetrieveLock(%d), capacity %d: %v", id, capacity, err)
					}
					return
				}
				if err != nil {
					rt.Fatal(err)
				}
				err = l.Free()
				switch {
				case !model[id]:
					if !errors.Is(err, lock.ErrNotAllocated) {
						rt.Fatalf("Free(%d) of a free ID: %v", id, err)
					}
				case err != nil:
					rt.Fatalf("Free(%d): %v", id, err)
				default:
					delete(model, id)
				}
			},
			"FreeAllLocks": func(rt *rapid.T) {
				if err := pickManager(rt).FreeAllLocks(); err != nil {
					rt.Fatal(err)
				}
				clear(model)
			},
			"Resize": func(rt *rapid.T) {
				n := rapid.SampledFrom([]uint32{1, 2, 5, 64, 65, 100, page, page + 1, page + 5, 2*page + 3}).Draw(rt, "n")
				err := pickManager(rt).Resize(n)
				var over bool
				for id := range model {
					over = over || id >= n
				}
				switch {
				case over:
					if !errors.Is(err, lock.ErrAllocated) {
						rt.Fatalf("Resize(%d) with IDs in the way: %v", n, err)
					}
				case err != nil:
					rt.Fatalf("Resize(%d): %v", n, err)
				default:
					capacity = n
				}
			},
			"Reopen": func(rt *rapid.T) {
				if err := m.Close(); err != nil {
					rt.Fatal(err)
				}
				if m, err = filelock.Open(dir); err != nil {
					rt.Fatal(err)
				}
			},
			"": func(rt *rapid.T) {
				check(rt, m)
				check(rt, other)
			},
		})
	})
}
