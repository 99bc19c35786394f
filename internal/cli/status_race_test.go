//go:build linux

package cli

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestStatusCapacityAllocatedRace (review 15; it found the contradiction
// in about 9 s before the fix in getStatus): getStatus reads the
// capacity (checkIDs) and the allocated IDs (Allocated) in two registry
// reads. 308aa9c computes "beyond_capacity" from the first and "allocated"
// from the second, so a grow and an allocation between them give a lock
// that is both allocated and beyond the capacity, which docs/cli.md says
// cannot be ("such a lock has allocated false and cannot be allocated"),
// and the text note says it "cannot be allocated unless the directory
// grows" of a lock that is allocated. Here another Manager grows the
// directory from 4 to 8, allocates 6, frees it and shrinks back, over and
// over, as another process would.
func TestStatusCapacityAllocatedRace(t *testing.T) {
	dir, m := newDir(t, 4)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if err := m.Resize(8); err != nil {
				t.Error(err)
				return
			}
			l, err := m.AllocateAndRetrieveLock(6)
			if err != nil {
				t.Error(err)
				return
			}
			if err := l.Free(); err != nil {
				t.Error(err)
				return
			}
			if err := m.Resize(4); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { stop.Store(true); <-done }()
	g := &globals{dir: dir}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		st, err := getStatus(g, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range st.Locks {
			if l.Allocated && l.BeyondCapacity {
				t.Fatalf("status shows lock %d allocated and beyond the capacity %d at once (allocated %d, free %d): %s",
					l.ID, st.Capacity, st.Allocated, st.Free, beyondCapacityNote(l.ID, st.Capacity))
			}
		}
	}
}
