//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

// Close: what it does to the locks a Manager holds, and to the callers
// that wait for one, in Lock, in the kernel or as readers.

// TestClose closes a Manager while one of its locks is held: the holder
// can still unlock it, every other method fails with lock.ErrClosed, no
// descriptor stays open, and the directory is intact.
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
	_, _, errs["LockUsers"] = m.LockUsers()
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

// TestCloseDuringKernelWait closes a Manager while LockContext waits in
// the kernel: the waiter gives up when cancelled, callers after Close get
// lock.ErrClosed, and once the holder lets go the kernel waiter releases
// the lock and its descriptor instead of handing it to anyone.
func TestCloseDuringKernelWait(t *testing.T) {
	t.Parallel()
	for _, md := range modes {
		name := md.contextName
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := create(t, 10)
			dir := m.Dir()
			holder := holdInChild(t, dir, 1)
			l := mustRetrieve(t, m, 1)
			ctx, cancel := context.WithCancel(t.Context())
			c := md.startContext(ctx, l)
			c.blocked(t, "a child process holds the lock")
			queued := startLockContext(t.Context(), mustRetrieve(t, m, 1))
			queued.blocked(t, "a child process holds the lock")
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if err := l.LockContext(t.Context()); !errors.Is(err, lock.ErrClosed) {
				t.Errorf("LockContext after Close: %v, want lock.ErrClosed", err)
			}
			cancel()
			c.wantCanceled(t, "cancelled after Close")
			if n := fdsUnder(t, dir); n != 1 {
				t.Errorf("%d descriptors open under the directory while the kernel waiter waits, want 1", n)
			}
			holder.Wait(childExit)
			if err := queued.wait(t, "the holder unlocked"); !errors.Is(err, lock.ErrClosed) {
				t.Errorf("LockContext queued when the Manager was closed: %v, want lock.ErrClosed", err)
			}
			if !freeElsewhere(t, dir, 1) {
				t.Error("lock still held after the holder exited: the kernel waiter kept it")
			}
			if n := fdsUnderSettled(t, dir); n != 0 {
				t.Errorf("%d descriptors still open under the directory after the kernel waiter finished", n)
			}
		})
	}
}

// TestCloseWithReaders closes a Manager while readers hold a lock: the
// shared lock stays held until the last RUnlock, which closes the
// descriptor, and new shared locking fails with lock.ErrClosed.
func TestCloseWithReaders(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	dir := m.Dir()
	a, b := mustRetrieve(t, m, 2), mustRetrieve(t, m, 2)
	a.RLock()
	b.RLock()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !sharedElsewhere(t, dir, 2) || !heldElsewhere(t, dir, 2) {
		t.Error("Close released the readers' shared lock")
	}
	if n := fdsUnder(t, dir); n != 1 {
		t.Errorf("after Close, %d descriptors are open in the directory, want 1 (the readers')", n)
	}
	for name, fn := range map[string]func(){"RLock": a.RLock, "TryRLock": func() { a.TryRLock() }} {
		v := panicValue(fn)
		if err, ok := v.(error); !ok || !errors.Is(err, lock.ErrClosed) {
			t.Errorf("%s after Close panicked with %v, want an error matching lock.ErrClosed", name, v)
		}
	}
	if err := a.RLockContext(t.Context()); !errors.Is(err, lock.ErrClosed) {
		t.Errorf("RLockContext after Close: %v, want lock.ErrClosed", err)
	}
	a.RUnlock()
	if !heldElsewhere(t, dir, 2) {
		t.Error("the first RUnlock after Close released the lock another reader holds")
	}
	b.RUnlock()
	if heldElsewhere(t, dir, 2) {
		t.Error("lock still held after the last RUnlock")
	}
	if n := fdsUnder(t, dir); n != 0 {
		t.Errorf("after the last RUnlock, %d descriptors are open in the directory", n)
	}
}
