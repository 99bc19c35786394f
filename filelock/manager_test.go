//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

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
