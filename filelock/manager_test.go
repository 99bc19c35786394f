//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

func TestCreateExisting(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	mustAllocate(t, m)
	_, err := filelock.Create(m.Dir(), 20)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over an existing directory: %v, want fs.ErrExist", err)
	}
	m2 := open(t, m.Dir())
	if got := capacity(t, m2); got != 10 {
		t.Errorf("capacity after a second Create = %d, want 10", got)
	}
	if got := allocated(t, m2); !slices.Equal(got, []uint32{0}) {
		t.Errorf("allocated after a second Create = %v, want [0]", got)
	}
}

func TestOpenMissing(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for _, dir := range []string{
		filepath.Join(tmp, "missing"),        // no directory at all
		filepath.Join(tmp, "missing", "sub"), // no parent either
		tmp,                                  // a directory, but no registry
	} {
		_, err := filelock.Open(dir)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%s) = %v, want fs.ErrNotExist", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created the directory it failed to open: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "registry")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created a registry: %v", err)
	}
}

func TestOpenOrCreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b", "locks")
	m, err := filelock.OpenOrCreate(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mustAllocate(t, m)
	m2, err := filelock.OpenOrCreate(dir, 500)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if got := capacity(t, m2); got != 10 {
		t.Errorf("OpenOrCreate on an existing directory: capacity %d, want the existing 10", got)
	}
	if got := allocated(t, m2); !slices.Equal(got, []uint32{0}) {
		t.Errorf("OpenOrCreate on an existing directory: allocated %v, want [0]", got)
	}
}

func TestCapacityRange(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for _, n := range []uint32{0, filelock.MaxLocks + 1, math.MaxUint32} {
		if m, err := filelock.Create(filepath.Join(tmp, strconv.Itoa(int(n))), n); err == nil {
			m.Close()
			t.Errorf("Create with capacity %d succeeded", n)
		}
	}
	for _, n := range []uint32{1, filelock.DefaultNumLocks, 32512, 32513, filelock.MaxLocks} {
		m, err := filelock.Create(filepath.Join(tmp, "ok"+strconv.Itoa(int(n))), n)
		if err != nil {
			t.Errorf("Create with capacity %d: %v", n, err)
			continue
		}
		if got := capacity(t, m); got != n {
			t.Errorf("capacity = %d, want %d", got, n)
		}
		if _, err := m.AllocateAndRetrieveLock(n - 1); err != nil {
			t.Errorf("capacity %d: allocating the last ID: %v", n, err)
		}
		if got := allocated(t, m); !slices.Equal(got, []uint32{n - 1}) {
			t.Errorf("capacity %d: allocated %v", n, got)
		}
		m.Close()
	}
	m := create(t, 5)
	for _, n := range []uint32{0, filelock.MaxLocks + 1} {
		if err := m.Resize(n); err == nil {
			t.Errorf("Resize(%d) succeeded", n)
		}
	}
}

func TestAllocateLowestFree(t *testing.T) {
	t.Parallel()
	m := create(t, 40000) // two bitmap pages
	for want := uint32(0); want < 5; want++ {
		if l := mustAllocate(t, m); l.ID() != want {
			t.Fatalf("AllocateLock = %d, want %d", l.ID(), want)
		}
	}
	for _, id := range []uint32{3, 1} {
		if err := mustRetrieve(t, m, id).Free(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.AllocateAndRetrieveLock(5); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint32{1, 3, 6} {
		if l := mustAllocate(t, m); l.ID() != want {
			t.Fatalf("AllocateLock = %d, want %d", l.ID(), want)
		}
	}
	// TestAllocateAcrossPages, in registry_test.go, crosses a page.
}

func TestNoFreeLocks(t *testing.T) {
	t.Parallel()
	m := create(t, 3)
	for range 3 {
		mustAllocate(t, m)
	}
	_, err := m.AllocateLock()
	if !errors.Is(err, lock.ErrNoFreeLocks) {
		t.Fatalf("AllocateLock at capacity: %v, want lock.ErrNoFreeLocks", err)
	}
	msg := err.Error()
	for _, want := range []string{"3", "Resize", "free"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if n, err := m.AvailableLocks(); err != nil || *n != 0 {
		t.Errorf("AvailableLocks = %v, %v; want 0", n, err)
	}
	// The ways out: free one, or grow.
	if err := mustRetrieve(t, m, 1).Free(); err != nil {
		t.Fatal(err)
	}
	if l := mustAllocate(t, m); l.ID() != 1 {
		t.Errorf("after Free(1): AllocateLock = %d, want 1", l.ID())
	}
	if err := m.Resize(4); err != nil {
		t.Fatal(err)
	}
	if l := mustAllocate(t, m); l.ID() != 3 {
		t.Errorf("after Resize(4): AllocateLock = %d, want 3", l.ID())
	}
}

func TestFreeReturnsToPool(t *testing.T) {
	t.Parallel()
	m := create(t, 1)
	for range 3 {
		l := mustAllocate(t, m)
		if l.ID() != 0 {
			t.Fatalf("AllocateLock = %d, want 0", l.ID())
		}
		if _, err := m.AllocateLock(); !errors.Is(err, lock.ErrNoFreeLocks) {
			t.Fatalf("second AllocateLock: %v, want ErrNoFreeLocks", err)
		}
		if err := l.Free(); err != nil {
			t.Fatal(err)
		}
		if got := allocated(t, m); len(got) != 0 {
			t.Fatalf("allocated after Free = %v", got)
		}
	}
}

func TestInvalidID(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	stale := mustRetrieve(t, m, 8) // from before the shrink
	if _, err := m.AllocateAndRetrieveLock(8); err != nil {
		t.Fatal(err)
	}
	if err := stale.Free(); err != nil {
		t.Fatal(err)
	}
	if err := m.Resize(5); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(id uint32) error{
		"RetrieveLock": func(id uint32) error { _, err := m.RetrieveLock(id); return err },
		"AllocateAndRetrieveLock": func(id uint32) error {
			_, err := m.AllocateAndRetrieveLock(id)
			return err
		},
	}
	for name, call := range calls {
		for _, id := range []uint32{5, 8, 10, filelock.MaxLocks, math.MaxUint32} {
			if err := call(id); !errors.Is(err, lock.ErrInvalidID) {
				t.Errorf("%s(%d) with capacity 5: %v, want lock.ErrInvalidID", name, id, err)
			} else if !strings.Contains(err.Error(), strconv.FormatUint(uint64(id), 10)) {
				t.Errorf("%s(%d): error %q does not name the ID", name, id, err)
			}
		}
	}
	if err := stale.Free(); !errors.Is(err, lock.ErrInvalidID) {
		t.Errorf("Free of ID 8 with capacity 5: %v, want lock.ErrInvalidID", err)
	}
	if got := allocated(t, m); len(got) != 0 {
		t.Errorf("invalid IDs changed the allocations: %v", got)
	}
	if err := m.Resize(10); err != nil {
		t.Fatal(err)
	}
	if got := allocated(t, m); len(got) != 0 {
		t.Errorf("after growing back, allocated = %v, want none", got)
	}
}

func TestFreeNotAllocated(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	l := mustAllocate(t, m)
	if err := mustRetrieve(t, m, 1).Free(); !errors.Is(err, lock.ErrNotAllocated) {
		t.Errorf("Free of a never-allocated lock: %v, want lock.ErrNotAllocated", err)
	}
	if err := l.Free(); err != nil {
		t.Fatal(err)
	}
	if err := l.Free(); !errors.Is(err, lock.ErrNotAllocated) {
		t.Errorf("second Free: %v, want lock.ErrNotAllocated", err)
	}
}

func TestAllocateAndRetrieveAllocated(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	mustAllocate(t, m)
	if _, err := m.AllocateAndRetrieveLock(7); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{0, 7} {
		if _, err := m.AllocateAndRetrieveLock(id); !errors.Is(err, lock.ErrAllocated) {
			t.Errorf("AllocateAndRetrieveLock(%d) on an allocated lock: %v, want lock.ErrAllocated", id, err)
		}
	}
	if got := allocated(t, m); !slices.Equal(got, []uint32{0, 7}) {
		t.Errorf("allocated = %v, want [0 7]", got)
	}
}

func TestLockUsableAfterFree(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	l := mustAllocate(t, m)
	l.Lock()
	if err := l.Free(); err != nil { // freeing a held lock keeps it held
		t.Fatal(err)
	}
	if !heldElsewhere(t, m.Dir(), l.ID()) {
		t.Error("Free released a held lock")
	}
	l.Unlock()
	l.Lock()
	if !heldElsewhere(t, m.Dir(), l.ID()) {
		t.Error("a freed lock does not exclude other managers")
	}
	l.Unlock()
	if got := allocated(t, m); len(got) != 0 {
		t.Errorf("locking a freed lock allocated it: %v", got)
	}
}

func TestLockDoesNotAllocate(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	// A freed ID.
	l := mustAllocate(t, m)
	if err := l.Free(); err != nil {
		t.Fatal(err)
	}
	l.Lock()
	l.Unlock()
	// Never-allocated IDs, through each way of locking.
	mustRetrieve(t, m, 1).Lock()
	mustRetrieve(t, m, 1).Unlock()
	if l2 := mustRetrieve(t, m, 2); !l2.TryLock() {
		t.Fatal("TryLock of a free lock failed")
	} else {
		l2.Unlock()
	}
	if l3 := mustRetrieve(t, m, 3); l3.LockContext(t.Context()) != nil {
		t.Fatal("LockContext failed")
	} else {
		l3.Unlock()
	}
	if got := allocated(t, m); len(got) != 0 {
		t.Fatalf("locking allocated %v", got)
	}
	if n, _ := m.AvailableLocks(); *n != 10 {
		t.Errorf("AvailableLocks = %d, want 10", *n)
	}
	// Not leaked either: they are allocated in order.
	for want := uint32(0); want < 4; want++ {
		if l := mustAllocate(t, m); l.ID() != want {
			t.Errorf("AllocateLock = %d, want %d", l.ID(), want)
		}
	}
}

func TestLockFilesNeverReplaced(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	inodes := map[string]uint64{}
	for id := range uint32(10) {
		if _, err := m.AllocateAndRetrieveLock(id); err != nil {
			t.Fatal(err)
		}
		l := mustRetrieve(t, m, id)
		l.Lock()
		l.Unlock()
		inodes[m.LockPath(id)] = inode(t, m.LockPath(id))
	}
	master := filepath.Join(m.Dir(), "registry.lock")
	inodes[master] = inode(t, master)
	check := func(after string) {
		t.Helper()
		for path, ino := range inodes {
			if got := inode(t, path); got != ino {
				t.Errorf("after %s: %s has inode %d, was %d", after, path, got, ino)
			}
		}
	}
	held := mustRetrieve(t, m, 4)
	held.Lock()
	defer held.Unlock()
	if err := mustRetrieve(t, m, 3).Free(); err != nil {
		t.Fatal(err)
	}
	check("Free")
	if err := m.FreeAllLocks(); err != nil {
		t.Fatal(err)
	}
	check("FreeAllLocks")
	if err := m.Resize(100); err != nil {
		t.Fatal(err)
	}
	check("growing")
	if err := m.Resize(5); err != nil {
		t.Fatal(err)
	}
	check("shrinking")
	if !heldElsewhere(t, m.Dir(), 4) {
		t.Error("lock 4, held across FreeAllLocks and Resize, is not held")
	}
}

func TestFreeAllLocksKeepsHeldLocks(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	l := mustAllocate(t, m)
	mustAllocate(t, m)
	l.Lock()
	if err := m.FreeAllLocks(); err != nil {
		t.Fatal(err)
	}
	if got := allocated(t, m); len(got) != 0 {
		t.Errorf("allocated after FreeAllLocks = %v", got)
	}
	if n, _ := m.AvailableLocks(); *n != 10 {
		t.Errorf("AvailableLocks after FreeAllLocks = %d, want 10", *n)
	}
	if !heldElsewhere(t, m.Dir(), l.ID()) {
		t.Error("FreeAllLocks released a held lock")
	}
	l.Unlock()
	if heldElsewhere(t, m.Dir(), l.ID()) {
		t.Error("lock still held after Unlock")
	}
	if got := mustAllocate(t, m).ID(); got != 0 {
		t.Errorf("AllocateLock after FreeAllLocks = %d, want 0", got)
	}
}

func TestResize(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	other := open(t, m.Dir())
	for _, id := range []uint32{1, 7, 9} {
		if _, err := m.AllocateAndRetrieveLock(id); err != nil {
			t.Fatal(err)
		}
	}
	// Growing across a page boundary keeps every allocation.
	if err := m.Resize(40000); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AllocateAndRetrieveLock(39999); err != nil {
		t.Fatal(err)
	}
	if got := allocated(t, other); !slices.Equal(got, []uint32{1, 7, 9, 39999}) {
		t.Errorf("after growing, another manager sees %v", got)
	}
	if err := mustRetrieve(t, m, 39999).Free(); err != nil {
		t.Fatal(err)
	}
	// Shrinking past allocated IDs fails and names them.
	err := other.Resize(5)
	if !errors.Is(err, lock.ErrAllocated) {
		t.Fatalf("shrinking past allocated IDs: %v, want lock.ErrAllocated", err)
	}
	if !strings.Contains(err.Error(), "(7 9)") {
		t.Errorf("error %q does not name IDs 7 and 9 (only)", err)
	}
	if got := capacity(t, m); got != 40000 {
		t.Errorf("a failed shrink changed the capacity to %d", got)
	}
	if err := other.Resize(8); err == nil || !strings.Contains(err.Error(), "(9)") {
		t.Errorf("Resize(8) = %v, want an error naming 9 only", err)
	}
	// To exactly the highest allocated ID + 1 works.
	if err := other.Resize(10); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{7, 9} {
		if err := mustRetrieve(t, m, id).Free(); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Resize(5); err != nil {
		t.Fatal(err)
	}
	if err := m.Resize(5); err != nil {
		t.Fatal(err)
	}
	if got, want := capacity(t, other), uint32(5); got != want {
		t.Errorf("capacity seen by another manager = %d, want %d", got, want)
	}
	if got := allocated(t, other); !slices.Equal(got, []uint32{1}) {
		t.Errorf("allocated after shrinking = %v, want [1]", got)
	}
}

func TestResizeNamesManyIDs(t *testing.T) {
	t.Parallel()
	m := create(t, 100)
	for id := uint32(50); id < 100; id++ {
		if _, err := m.AllocateAndRetrieveLock(id); err != nil {
			t.Fatal(err)
		}
	}
	err := m.Resize(10)
	if !errors.Is(err, lock.ErrAllocated) || !strings.Contains(err.Error(), "50") || !strings.Contains(err.Error(), "50 allocated") {
		t.Errorf("Resize(10) = %v; want ErrAllocated naming the count and the first IDs", err)
	}
	t.Log(err)
}

func TestUnlockUnlockedPanics(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	l := mustRetrieve(t, m, 4)
	check := func(when string) {
		t.Helper()
		v := panicValue(l.Unlock)
		if v == nil {
			t.Fatalf("Unlock %s did not panic", when)
		}
		msg := fmtValue(v)
		if !strings.Contains(msg, "unlocked") || !strings.Contains(msg, "4") {
			t.Errorf("Unlock %s panicked with %q; want a message naming the unlocked lock", when, msg)
		}
	}
	check("of a never-locked lock")
	l.Lock()
	l.Unlock()
	check("twice")
	// The lock still works.
	if !l.TryLock() {
		t.Fatal("TryLock after a bad Unlock failed")
	}
	l.Unlock()
}

func fmtValue(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	return fmt.Sprint(v)
}

func TestTryLock(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	other := open(t, m.Dir())
	a, b := mustRetrieve(t, m, 2), mustRetrieve(t, m, 2)
	c := mustRetrieve(t, other, 2)
	if !a.TryLock() {
		t.Fatal("TryLock of a free lock failed")
	}
	for name, l := range map[string]*filelock.Locker{"the same Locker": a, "another Locker": b, "another Manager": c} {
		if l.TryLock() {
			t.Errorf("TryLock through %s succeeded while the lock is held", name)
			l.Unlock()
		}
	}
	if !mustRetrieve(t, m, 3).TryLock() {
		t.Error("TryLock of another ID failed")
	}
	a.Unlock()
	if !c.TryLock() {
		t.Fatal("TryLock from another Manager after Unlock failed")
	}
	if b.TryLock() {
		t.Error("TryLock succeeded while another Manager holds the lock")
	}
	c.Unlock()
	if !b.TryLock() {
		t.Error("TryLock after the other Manager's Unlock failed")
	}
	b.Unlock()
}

func TestLockContext(t *testing.T) {
	t.Parallel()
	for _, holder := range []string{"same Manager", "another Manager", "another process"} {
		t.Run(holder, func(t *testing.T) {
			t.Parallel()
			m := create(t, 10)
			var release func()
			switch holder {
			case "same Manager":
				h := mustRetrieve(t, m, 5)
				h.Lock()
				release = h.Unlock
			case "another Manager":
				h := mustRetrieve(t, open(t, m.Dir()), 5)
				h.Lock()
				release = h.Unlock
			case "another process":
				c := holdInChild(t, m.Dir(), 5)
				release = func() { c.stdin.Close(); c.wait(t) }
			}
			l := mustRetrieve(t, m, 5)

			// Deadline.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
			err := l.LockContext(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("LockContext with a deadline on a held lock: %v, want DeadlineExceeded", err)
			}

			// Cancellation, measured from the cancel.
			ctx, cancel = context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() { errc <- l.LockContext(ctx) }()
			time.Sleep(30 * time.Millisecond) // let it start waiting
			start := time.Now()
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("LockContext did not return 10s after its context was cancelled")
			}
			latency := time.Since(start)
			t.Logf("LockContext returned %v after cancel", latency)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("LockContext after cancel: %v, want context.Canceled", err)
			}
			// Promptness is measured and logged above; a bound this
			// loose only catches a wait stuck in flock(2), which
			// would last until the holder's release below, without
			// failing on a loaded machine.
			if latency > time.Second {
				t.Errorf("LockContext returned %v after cancel, want within milliseconds", latency)
			}

			// Nothing is left held. The cancelled LockContext's kernel
			// waiter takes the lock when the holder lets go and then
			// releases it, in its own goroutine: soon, not at once.
			release()
			if !freeElsewhere(t, m.Dir(), 5) {
				t.Error("lock held after a cancelled LockContext and the holder's Unlock")
			}
			if !eventually(func() bool {
				if l.TryLock() {
					l.Unlock()
					return true
				}
				return false
			}) {
				t.Fatal("TryLock through the same Manager kept failing after a cancelled LockContext")
			}

			// And it takes the lock once it is released.
			h := mustRetrieve(t, open(t, m.Dir()), 5)
			h.Lock()
			go func() {
				time.Sleep(20 * time.Millisecond)
				h.Unlock()
			}()
			ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := l.LockContext(ctx); err != nil {
				t.Fatalf("LockContext on a lock released later: %v", err)
			}
			l.Unlock()
		})
	}
}

func TestLockContextNoDeadline(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	l := mustRetrieve(t, m, 1)
	if err := l.LockContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !heldElsewhere(t, m.Dir(), 1) {
		t.Error("LockContext returned nil without holding the lock")
	}
	l.Unlock()
}

func TestUnlockFromAnotherGoroutine(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	l := mustRetrieve(t, m, 0)
	for range 100 {
		l.Lock()
		done := make(chan any)
		go func() { done <- panicValue(l.Unlock) }()
		if v := <-done; v != nil {
			t.Fatalf("Unlock from another goroutine panicked: %v", v)
		}
	}
	if heldElsewhere(t, m.Dir(), 0) {
		t.Error("lock held after Unlock from another goroutine")
	}
}

// TestMutualExclusion runs goroutines that increment a counter under the
// lock with a read, a yield and a write, so that any overlap loses an
// update. The counter uses atomic loads and stores only so that the race
// detector, which cannot see flock, stays quiet between Managers; the
// increment itself is not atomic.
func TestMutualExclusion(t *testing.T) {
	t.Parallel()
	const goroutines, rounds = 8, 200
	for _, how := range []string{"one Locker", "separate Lockers", "two Managers", "three Managers, LockContext and TryLock"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			m := create(t, 10)
			shared := mustRetrieve(t, m, 3)
			managers := []*filelock.Manager{m}
			switch how {
			case "two Managers":
				managers = append(managers, open(t, m.Dir()))
			case "three Managers, LockContext and TryLock":
				managers = append(managers, open(t, m.Dir()), open(t, m.Dir()))
			}
			var counter, inside, overlaps atomic.Int64
			var wg sync.WaitGroup
			for g := range goroutines {
				l := shared
				if how != "one Locker" {
					l = mustRetrieve(t, managers[g%len(managers)], 3)
				}
				wg.Go(func() {
					for range rounds {
						switch {
						case strings.Contains(how, "TryLock") && g%3 == 1:
							for !l.TryLock() {
								time.Sleep(10 * time.Microsecond)
							}
						case strings.Contains(how, "LockContext") && g%3 == 2:
							if err := l.LockContext(t.Context()); err != nil {
								panic(err)
							}
						default:
							l.Lock()
						}
						if inside.Add(1) != 1 {
							overlaps.Add(1)
						}
						v := counter.Load()
						time.Sleep(0) // yield
						counter.Store(v + 1)
						inside.Add(-1)
						l.Unlock()
					}
				})
			}
			wg.Wait()
			if got := counter.Load(); got != goroutines*rounds {
				t.Errorf("counter = %d, want %d: updates were lost", got, goroutines*rounds)
			}
			if n := overlaps.Load(); n != 0 {
				t.Errorf("%d times a goroutine entered the critical section while another was in it", n)
			}
		})
	}
}

func TestAvailableLocks(t *testing.T) {
	t.Parallel()
	m := create(t, 40000)
	check := func(want uint32) {
		t.Helper()
		n, err := m.AvailableLocks()
		if err != nil {
			t.Fatal(err)
		}
		if n == nil || *n != want {
			t.Fatalf("AvailableLocks = %v, want %d", n, want)
		}
	}
	check(40000)
	for range 3 {
		mustAllocate(t, m)
	}
	if _, err := m.AllocateAndRetrieveLock(39000); err != nil {
		t.Fatal(err)
	}
	check(39996)
	if err := mustRetrieve(t, m, 1).Free(); err != nil {
		t.Fatal(err)
	}
	check(39997)
	if err := m.Resize(50000); err != nil {
		t.Fatal(err)
	}
	check(49997)
	if err := m.FreeAllLocks(); err != nil {
		t.Fatal(err)
	}
	check(50000)
}

func TestHolders(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/locks"); err != nil {
		t.Skip("no /proc/locks")
	}
	m := create(t, 10)
	for _, id := range []uint32{1, 3, 8} {
		if _, err := m.AllocateAndRetrieveLock(id); err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := m.LocksHeld(); err != nil || len(ids) != 0 {
		t.Fatalf("LocksHeld with nothing held = %v, %v", ids, err)
	}
	// The child holds allocated 3 and 8, and unallocated 5.
	c := holdInChild(t, m.Dir(), 3, 5, 8)
	pid := c.cmd.Process.Pid
	ids, err := m.LocksHeld()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []uint32{3, 8}) {
		t.Errorf("LocksHeld = %v, want [3 8]", ids)
	}
	hs, err := m.Holders()
	if err != nil {
		t.Fatal(err)
	}
	want := []filelock.Holder{
		{ID: 3, PID: pid, Exclusive: true, Allocated: true},
		{ID: 5, PID: pid, Exclusive: true, Allocated: false},
		{ID: 8, PID: pid, Exclusive: true, Allocated: true},
	}
	if !slices.Equal(hs, want) {
		t.Errorf("Holders = %+v, want %+v", hs, want)
	}
	// After a shrink, held lock 8 is beyond the capacity and not listed.
	if err := mustRetrieve(t, m, 8).Free(); err != nil {
		t.Fatal(err)
	}
	if err := m.Resize(6); err != nil {
		t.Fatal(err)
	}
	if hs, err = m.Holders(); err != nil || !slices.Equal(hs, want[:2]) {
		t.Errorf("Holders after shrinking to 6 = %+v, %v; want %+v", hs, err, want[:2])
	}
	// And a lock held by this process counts too.
	l := mustRetrieve(t, m, 1)
	l.Lock()
	if ids, err = m.LocksHeld(); err != nil || !slices.Equal(ids, []uint32{1, 3}) {
		t.Errorf("LocksHeld = %v, %v; want [1 3]", ids, err)
	}
	l.Unlock()
	c.stdin.Close()
	c.wait(t)
	if ids, err = m.LocksHeld(); err != nil || len(ids) != 0 {
		t.Errorf("LocksHeld after the child exited = %v, %v; want none", ids, err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	held := mustAllocate(t, m)
	idle := mustAllocate(t, m)
	idle.Lock()
	idle.Unlock()
	held.Lock()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// A lock held across Close stays held until its Unlock.
	if !heldElsewhere(t, m.Dir(), held.ID()) {
		t.Error("Close released a held lock")
	}
	if fdsUnder(t, m.Dir()) != 1 {
		t.Errorf("after Close, %d descriptors are open in the directory, want 1 (the held lock's)", fdsUnder(t, m.Dir()))
	}
	if v := panicValue(held.Unlock); v != nil {
		t.Fatalf("Unlock after Close panicked: %v", v)
	}
	if heldElsewhere(t, m.Dir(), held.ID()) {
		t.Error("lock still held after Unlock")
	}
	if n := fdsUnder(t, m.Dir()); n != 0 {
		t.Errorf("after Close and Unlock, %d descriptors are open in the directory", n)
	}

	errs := map[string]error{}
	_, errs["AllocateLock"] = m.AllocateLock()
	_, errs["RetrieveLock"] = m.RetrieveLock(1)
	_, errs["AllocateAndRetrieveLock"] = m.AllocateAndRetrieveLock(5)
	errs["Free"] = idle.Free()
	errs["FreeAllLocks"] = m.FreeAllLocks()
	_, errs["AvailableLocks"] = m.AvailableLocks()
	_, errs["LocksHeld"] = m.LocksHeld()
	_, errs["Holders"] = m.Holders()
	_, errs["Capacity"] = m.Capacity()
	_, errs["Allocated"] = m.Allocated()
	errs["Resize"] = m.Resize(20)
	errs["LockContext"] = idle.LockContext(t.Context())
	for name, err := range errs {
		if !errors.Is(err, lock.ErrClosed) {
			t.Errorf("%s after Close: %v, want lock.ErrClosed", name, err)
		}
	}
	for name, fn := range map[string]func(){"Lock": idle.Lock, "TryLock": func() { idle.TryLock() }} {
		v := panicValue(fn)
		if err, ok := v.(error); !ok || !errors.Is(err, lock.ErrClosed) {
			t.Errorf("%s after Close panicked with %v, want an error matching lock.ErrClosed", name, v)
		}
	}
	if n := fdsUnder(t, m.Dir()); n != 0 {
		t.Errorf("after using a closed manager, %d descriptors are open in the directory", n)
	}
	// The directory is intact.
	m2 := open(t, m.Dir())
	if got := allocated(t, m2); !slices.Equal(got, []uint32{0, 1}) {
		t.Errorf("allocated = %v, want [0 1]", got)
	}
}

// TestModes creates directories in children with different umasks and
// checks that the modes do not depend on it.
func TestModes(t *testing.T) {
	t.Parallel()
	gid := os.Getgid()
	for _, tc := range []struct {
		umask             string
		shared            bool
		dirMode, fileMode uint32
	}{
		{"0", false, 0o700, 0o600},
		{"022", false, 0o700, 0o600},
		{"077", false, 0o700, 0o600},
		{"0", true, 0o2770, 0o660},
		{"022", true, 0o2770, 0o660},
		{"077", true, 0o2770, 0o660},
	} {
		name := "umask" + tc.umask
		if tc.shared {
			name += "-shared"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "locks")
			env := []string{"DIR=" + dir, "UMASK=" + tc.umask}
			if tc.shared {
				env = append(env, "GID="+strconv.Itoa(gid))
			}
			c := startChild(t, "modes", env...)
			c.stdin.Close()
			c.wait(t)
			check := func(rel string, want uint32) {
				t.Helper()
				var st syscall.Stat_t
				if err := syscall.Lstat(filepath.Join(dir, rel), &st); err != nil {
					t.Error(err)
					return
				}
				if got := uint32(st.Mode) & 0o7777; got != want {
					t.Errorf("%s: mode %#o, want %#o", rel, got, want)
				}
				if tc.shared && int(st.Gid) != gid {
					t.Errorf("%s: group %d, want %d", rel, st.Gid, gid)
				}
			}
			check(".", tc.dirMode)
			check("locks", tc.dirMode)
			check("registry", tc.fileMode)
			check("registry.lock", tc.fileMode)
			check("locks/2", tc.fileMode)
			check("locks/3", tc.fileMode)
			if _, err := os.Stat(filepath.Join(dir, "registry.tmp")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("registry.tmp left behind: %v", err)
			}
		})
	}
}

// TestRefuseForeignDirectory checks that a directory holding other files
// is not turned into a lock directory, and is left as it was.
func TestRefuseForeignDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func() (*filelock.Manager, error){
		"Create":       func() (*filelock.Manager, error) { return filelock.Create(dir, 8) },
		"OpenOrCreate": func() (*filelock.Manager, error) { return filelock.OpenOrCreate(dir, 8) },
	} {
		m, err := open()
		if err == nil {
			m.Close()
			t.Fatalf("%s made a lock directory of a directory holding notes.txt", name)
		}
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "not a lock directory") {
			t.Errorf("%s: error %v, want fs.ErrExist saying it is not a lock directory", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "registry")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a registry appeared: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "mine" {
		t.Errorf("notes.txt changed: %q, %v", b, err)
	}
}

// TestLockFile checks that LockFile creates the lock file with its
// documented mode, neither allocating nor locking it, and validates the ID.
func TestLockFile(t *testing.T) {
	t.Parallel()
	m, err := filelock.Create(filepath.Join(t.TempDir(), "ld"), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := m.LockFile(7)
	if err != nil {
		t.Fatal(err)
	}
	if p != m.LockPath(7) {
		t.Errorf("LockFile(7) = %q, want LockPath(7) = %q", p, m.LockPath(7))
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v, want a regular file with mode 0600", fi.Mode())
	}
	if ids, err := m.Allocated(); err != nil || len(ids) != 0 {
		t.Errorf("Allocated() = %v, %v after LockFile; want none", ids, err)
	}
	l, _ := m.Retrieve(7)
	if !l.TryLock() {
		t.Error("lock 7 is not free after LockFile")
	} else {
		l.Unlock()
	}
	if _, err := m.LockFile(16); !errors.Is(err, lock.ErrInvalidID) {
		t.Errorf("LockFile(16) at capacity 16: %v, want lock.ErrInvalidID", err)
	}
}

// TestCloseWhileWaiting checks that a LockContext waiting when its Manager
// is closed, and giving up afterwards, leaves no descriptor open.
func TestCloseWhileWaiting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ld")
	m1, err := filelock.OpenOrCreate(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := filelock.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	holder := mustRetrieve(t, m2, 1)
	holder.Lock()
	waiter := mustRetrieve(t, m1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- waiter.LockContext(ctx) }()
	time.Sleep(50 * time.Millisecond) // let it start waiting
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Error("LockContext on a held lock succeeded")
	}
	holder.Unlock()
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	// The kernel waiter that LockContext left behind takes the lock when
	// the holder lets go, releases it and closes the descriptor: soon,
	// but in its own goroutine.
	if n := fdsUnderSettled(t, dir); n != 0 {
		t.Errorf("%d descriptors under %s still open after both Managers closed", n, dir)
	}
}

// TestRecreateAfterMovingRegistryAside checks the documented way to start
// afresh in place: move the registry aside and create a new one. Managers
// still open on the directory notice the new registry.
func TestRecreateAfterMovingRegistryAside(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ld")
	old, err := filelock.Create(dir, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.AllocateLock(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "registry"), filepath.Join(dir, "registry.bak")); err != nil {
		t.Fatal(err)
	}
	m, err := filelock.Create(dir, 4)
	if err != nil {
		t.Fatalf("Create after moving the registry aside: %v", err)
	}
	defer m.Close()
	if c, err := old.Capacity(); err != nil || c != 4 {
		t.Errorf("the older Manager sees capacity %d, %v; want the new registry's 4", c, err)
	}
	if ids := allocated(t, old); len(ids) != 0 {
		t.Errorf("the older Manager sees %v allocated in the new registry, want none", ids)
	}
}

// TestFailedLockerIsNilInterface checks that the lock.Manager methods return
// a nil lock.Locker with their error, not a nil *Locker inside one, which
// would compare unequal to nil.
func TestFailedLockerIsNilInterface(t *testing.T) {
	m, err := filelock.Create(filepath.Join(t.TempDir(), "locks"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for range 4 {
		if _, err := m.AllocateLock(); err != nil {
			t.Fatal(err)
		}
	}
	calls := map[string]func() (lock.Locker, error){
		"AllocateLock":            m.AllocateLock,
		"RetrieveLock":            func() (lock.Locker, error) { return m.RetrieveLock(9) },
		"AllocateAndRetrieveLock": func() (lock.Locker, error) { return m.AllocateAndRetrieveLock(1) },
	}
	for name, call := range calls {
		if l, err := call(); err == nil || l != nil {
			t.Errorf("%s = %v, %v; want a nil Locker and an error", name, l, err)
		}
	}
}
