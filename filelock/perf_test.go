//go:build unix

package filelock_test

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/lockdir/lockdir/filelock"
)

// The deterministic halves of the performance budgets in
// docs/performance.md: what a benchmark would only show with noise.

// TestLockUnlockAllocs checks that the hot path allocates nothing: an
// uncontended Lock+Unlock (and TryLock+Unlock) on a lock whose file is open.
func TestLockUnlockAllocs(t *testing.T) {
	fl := allocsLocker(t)
	// AllocsPerRun runs each function once before counting, which opens the
	// lock file.
	if n := testing.AllocsPerRun(1000, func() { fl.Lock(); fl.Unlock() }); n != 0 {
		t.Errorf("Lock+Unlock: %v allocs per run, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if !fl.TryLock() {
			panic("TryLock failed")
		}
		fl.Unlock()
	}); n != 0 {
		t.Errorf("TryLock+Unlock: %v allocs per run, want 0", n)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		if err := fl.LockContext(ctx); err != nil {
			panic(err)
		}
		fl.Unlock()
	}); n != 0 {
		t.Errorf("LockContext(context.Background())+Unlock: %v allocs per run, want 0", n)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if n := testing.AllocsPerRun(1000, func() {
		if err := fl.LockContext(ctx); err != nil {
			panic(err)
		}
		fl.Unlock()
	}); n != 0 {
		t.Errorf("LockContext(cancellable)+Unlock, uncontended: %v allocs per run, want 0", n)
	}
}

// TestRegistrySize checks that the registry of a 1,000,000-lock directory
// takes at most 160 KiB, both in size and in blocks on disk.
func TestRegistrySize(t *testing.T) {
	const budget = 160 << 10
	for _, n := range []uint32{filelock.DefaultNumLocks, 1_000_000} {
		m, err := filelock.Create(t.TempDir()+"/locks", n)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filelock.RegistryPathForTest(m))
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		size := fi.Size()
		disk := fi.Sys().(*syscall.Stat_t).Blocks * 512
		t.Logf("%d locks: registry is %d bytes, %d on disk", n, size, disk)
		if size > budget || disk > budget {
			t.Errorf("%d locks: registry is %d bytes, %d on disk; want at most %d", n, size, disk, budget)
		}
	}
}

// TestRLockRUnlockAllocs checks that the shared lock's hot path allocates
// nothing either: an uncontended RLock+RUnlock, TryRLock+RUnlock and
// RLockContext+RUnlock with a cancellable context, and a reader joining
// readers that already hold the lock.
func TestRLockRUnlockAllocs(t *testing.T) {
	fl := allocsLocker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"RLock+RUnlock", func() { fl.RLock(); fl.RUnlock() }},
		{"TryRLock+RUnlock", func() {
			if !fl.TryRLock() {
				panic("TryRLock failed")
			}
			fl.RUnlock()
		}},
		{"RLockContext(cancellable)+RUnlock", func() {
			if err := fl.RLockContext(ctx); err != nil {
				panic(err)
			}
			fl.RUnlock()
		}},
		{"RLock+RUnlock joining a reader", func() {
			fl.RLock()
			fl.RLock()
			fl.RUnlock()
			fl.RUnlock()
		}},
	} {
		if n := testing.AllocsPerRun(1000, c.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, n)
		}
	}
}

// allocsLocker returns an allocated lock of a new directory, for counting
// allocations; it skips the test under the race detector, which changes
// the counts.
func allocsLocker(t *testing.T) *filelock.Locker {
	t.Helper()
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	m, err := filelock.Create(t.TempDir()+"/locks", filelock.DefaultNumLocks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	fl, err := m.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	return fl
}
