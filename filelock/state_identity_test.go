//go:build linux

package filelock

import (
	"os"
	"testing"
	"time"
)

// TestOneStatePerID (reliability round two, review): fdCache.sweep drops an
// idle state from byID while Lockers still point at it, so a Locker
// retrieved afterwards for the same ID gets a second lockState. The two
// Lockers then no longer behave as one lock of the process, which the
// Locker doc promises "whether they share one Locker or use several for
// its ID from one Manager":
//
//   - Unlock through the second Locker of a lock taken through the first
//     panics ("Unlock of unlocked lock"), although lock.Locker says
//     RetrieveLock returns "another instance of the same lock";
//   - TryRLock through the first succeeds while a goroutine waits for the
//     lock exclusively through the second (TryRLock's doc says it fails
//     then), so readers through the old Locker starve the writer.
//
// Whether a program hits this depends only on how many other IDs it
// touched: the "fresh" rows pass, the "swept" rows fail.
func TestOneStatePerID(t *testing.T) {
	for _, tc := range []struct {
		name  string
		touch uint32 // other IDs locked once between the two Retrieves
	}{
		{"fresh", 0},
		{"swept", 99},
	} {
		setup := func(t *testing.T) (*Manager, *Locker, *Locker) {
			t.Helper()
			m, err := Create(t.TempDir(), 200, WithMaxOpenFiles(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			l1, err := m.Retrieve(0)
			if err != nil {
				t.Fatal(err)
			}
			l1.Lock()
			l1.Unlock()
			for id := uint32(1); id <= tc.touch; id++ {
				l, err := m.Retrieve(id)
				if err != nil {
					t.Fatal(err)
				}
				l.Lock()
				l.Unlock()
			}
			l2, err := m.Retrieve(0)
			if err != nil {
				t.Fatal(err)
			}
			return m, l1, l2
		}
		t.Run(tc.name+"/UnlockThroughOtherLocker", func(t *testing.T) {
			_, l1, l2 := setup(t)
			l1.Lock()
			if p := reviewPanic(l2.Unlock); p != nil {
				t.Errorf("Unlock through a second Locker for ID 0 panicked: %v", p)
				l1.Unlock()
			}
		})
		t.Run(tc.name+"/TryRLockWhileWriterWaits", func(t *testing.T) {
			m, l1, l2 := setup(t)
			l1.RLock()
			locked := make(chan struct{})
			go func() { l2.Lock(); close(locked) }()
			waitWriterQueued(t, m, l2)
			if l1.TryRLock() {
				t.Errorf("TryRLock succeeded while a goroutine of the process waits for the lock exclusively")
				l1.RUnlock()
			}
			l1.RUnlock()
			<-locked
			l2.Unlock()
		})
	}
}

// waitWriterQueued waits until a writer waits for l: queued on its state,
// or blocked in flock(2) as /proc/locks shows.
func waitWriterQueued(t *testing.T, m *Manager, l *Locker) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.st.mu.Lock()
		queued := l.st.head != nil
		l.st.mu.Unlock()
		if queued {
			return
		}
		ws, err := m.Waiters()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if w.ID == l.ID() && w.PID == os.Getpid() && w.Exclusive {
				return
			}
		}
	}
	t.Fatal("the writer never started waiting")
}

func reviewPanic(fn func()) (v any) {
	defer func() { v = recover() }()
	fn()
	return nil
}
