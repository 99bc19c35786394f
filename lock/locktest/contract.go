package locktest

import (
	"math"
	"slices"
	"testing"

	"github.com/lockdir/lockdir/lock"
)

// contractChecks check the rules of the contract on one manager, or on two
// handles on the same locks, from a single goroutine as far as possible.
var contractChecks = []check{
	{"AllocateAll", checkAllocateAll},
	{"LowestFreeFirst", checkLowestFreeFirst},
	{"FreeReallocates", checkFreeReallocates},
	{"CapacityOne", checkCapacityOne},
	{"RetrieveLock", checkRetrieveLock},
	{"InvalidID", checkInvalidID},
	{"AllocateAndRetrieveLock", checkAllocateAndRetrieveLock},
	{"FreeNotAllocated", checkFreeNotAllocated},
	{"FreeAllLocks", checkFreeAllLocks},
	{"AvailableLocks", checkAvailableLocks},
	{"LocksHeld", checkLocksHeld},
	{"UsableAfterFree", checkUsableAfterFree},
	{"LockDoesNotAllocate", checkLockDoesNotAllocate},
	{"UnlockUnlockedPanics", checkUnlockUnlockedPanics},
	{"DistinctIDs", checkDistinctIDs},
	{"TwoHandles", checkTwoHandles},
}

// checkAllocateAll allocates every lock: the IDs are distinct, in range and,
// unless AnyFreeID, 0, 1, 2 and so on; then AllocateLock fails with
// ErrNoFreeLocks and AvailableLocks counts down to 0.
func checkAllocateAll(t *testing.T, s *suite) {
	const n = 8
	m, _ := s.new(t, n)
	wantAvailable(t, m, n, "of a new manager")
	seen := make(map[uint32]bool)
	for i := range uint32(n) {
		id := allocate(t, m).ID()
		switch {
		case id >= n:
			t.Errorf("AllocateLock returned ID %d, out of range for capacity %d", id, n)
		case seen[id]:
			t.Errorf("AllocateLock returned ID %d twice", id)
		case !s.h.AnyFreeID && id != i:
			t.Errorf("AllocateLock returned ID %d, want the lowest free ID %d", id, i)
		}
		seen[id] = true
		wantAvailable(t, m, n-i-1, "after AllocateLock")
	}
	for range 2 {
		l, err := m.AllocateLock()
		wantErr(t, err, lock.ErrNoFreeLocks, "AllocateLock at capacity")
		if err == nil {
			t.Errorf("AllocateLock at capacity returned lock %d", l.ID())
		}
	}
	wantAvailable(t, m, 0, "at capacity")
}

// checkLowestFreeFirst frees locks out of order: AllocateLock returns the
// lowest free ID first.
func checkLowestFreeFirst(t *testing.T, s *suite) {
	if s.h.AnyFreeID {
		t.Skip("Harness.AnyFreeID is set")
	}
	m, _ := s.new(t, 8)
	var ls []lock.Locker
	for range 6 {
		ls = append(ls, allocate(t, m))
	}
	for _, id := range []uint32{4, 1, 3} {
		free(t, ls[id])
	}
	for _, want := range []uint32{1, 3, 4, 6, 7} {
		if got := allocate(t, m).ID(); got != want {
			t.Errorf("AllocateLock returned ID %d, want the lowest free ID %d", got, want)
		}
	}
}

// checkFreeReallocates fills the manager, then frees locks, one through the
// allocated Locker and one through a retrieved Locker: each is allocated
// again, and nothing else.
func checkFreeReallocates(t *testing.T, s *suite) {
	const n = 4
	m, _ := s.new(t, n)
	var ls []lock.Locker
	for range n {
		ls = append(ls, allocate(t, m))
	}
	for _, l := range []lock.Locker{ls[2], retrieve(t, m, ls[1].ID())} {
		free(t, l)
		wantAvailable(t, m, 1, "after one Free at capacity")
		if got := allocate(t, m).ID(); got != l.ID() {
			t.Errorf("AllocateLock returned ID %d, want freed ID %d, the only free one", got, l.ID())
		}
		_, err := m.AllocateLock()
		wantErr(t, err, lock.ErrNoFreeLocks, "AllocateLock at capacity")
	}
}

// checkCapacityOne uses a manager with a single lock.
func checkCapacityOne(t *testing.T, s *suite) {
	m, _ := s.new(t, 1)
	for range 3 {
		l := allocate(t, m)
		if l.ID() != 0 {
			t.Fatalf("AllocateLock with capacity 1 returned ID %d", l.ID())
		}
		_, err := m.AllocateLock()
		wantErr(t, err, lock.ErrNoFreeLocks, "AllocateLock at capacity 1")
		_, err = m.AllocateAndRetrieveLock(0)
		wantErr(t, err, lock.ErrAllocated, "AllocateAndRetrieveLock(0) of an allocated lock")
		_, err = m.RetrieveLock(1)
		wantErr(t, err, lock.ErrInvalidID, "RetrieveLock(1) with capacity 1")
		free(t, l)
	}
}

// checkRetrieveLock retrieves allocated and unallocated locks: each has the
// ID asked for, and retrieving allocates nothing.
func checkRetrieveLock(t *testing.T, s *suite) {
	const n = 8
	m, _ := s.new(t, n)
	a := allocate(t, m)
	retrieve(t, m, a.ID())
	for id := range uint32(n) {
		retrieve(t, m, id)
		retrieve(t, m, id)
	}
	wantAvailable(t, m, n-1, "after retrieving every lock")
	for id := range uint32(n) {
		if id != a.ID() {
			allocateID(t, m, id)
		}
	}
}

// checkInvalidID passes IDs at and beyond the capacity: RetrieveLock and
// AllocateAndRetrieveLock fail with ErrInvalidID and change nothing.
func checkInvalidID(t *testing.T, s *suite) {
	const n = 8
	m, _ := s.new(t, n)
	for _, id := range []uint32{n, n + 1, 1 << 24, math.MaxUint32} {
		_, err := m.RetrieveLock(id)
		wantErr(t, err, lock.ErrInvalidID, "RetrieveLock of an ID beyond the capacity")
		_, err = m.AllocateAndRetrieveLock(id)
		wantErr(t, err, lock.ErrInvalidID, "AllocateAndRetrieveLock of an ID beyond the capacity")
	}
	wantAvailable(t, m, n, "after invalid IDs")
	for range n {
		if id := allocate(t, m).ID(); id >= n {
			t.Errorf("AllocateLock returned ID %d, out of range for capacity %d", id, n)
		}
	}
}

// checkAllocateAndRetrieveLock allocates a given ID: a second allocation of
// it fails with ErrAllocated, AllocateLock never returns it, and after Free
// it can be allocated again.
func checkAllocateAndRetrieveLock(t *testing.T, s *suite) {
	const n, id = 6, 3
	m, _ := s.new(t, n)
	l := allocateID(t, m, id)
	wantAvailable(t, m, n-1, "after AllocateAndRetrieveLock")
	_, err := m.AllocateAndRetrieveLock(id)
	wantErr(t, err, lock.ErrAllocated, "AllocateAndRetrieveLock of an allocated ID")
	for range n - 1 {
		if got := allocate(t, m).ID(); got == id {
			t.Errorf("AllocateLock returned ID %d, allocated by AllocateAndRetrieveLock", got)
		}
	}
	_, err = m.AllocateLock()
	wantErr(t, err, lock.ErrNoFreeLocks, "AllocateLock at capacity")
	_, err = m.AllocateAndRetrieveLock(id)
	wantErr(t, err, lock.ErrAllocated, "AllocateAndRetrieveLock of an allocated ID")
	free(t, l)
	allocateID(t, m, id)
}

// checkFreeNotAllocated frees a lock that was never allocated and frees a
// lock twice: both fail with ErrNotAllocated.
func checkFreeNotAllocated(t *testing.T, s *suite) {
	const n = 4
	m, _ := s.new(t, n)
	wantErr(t, retrieve(t, m, 2).Free(), lock.ErrNotAllocated, "Free of a never-allocated lock")
	l := allocate(t, m)
	free(t, l)
	wantErr(t, l.Free(), lock.ErrNotAllocated, "second Free of a lock")
	wantErr(t, retrieve(t, m, l.ID()).Free(), lock.ErrNotAllocated, "Free of a freed lock")
	wantAvailable(t, m, n, "after failed Frees")
}

// checkFreeAllLocks frees every lock while one is held: every lock can be
// allocated again, and the held lock stays held.
func checkFreeAllLocks(t *testing.T, s *suite) {
	const n = 8
	m, _ := s.new(t, n)
	if err := m.FreeAllLocks(); err != nil {
		t.Fatalf("FreeAllLocks of a new manager: %v", err)
	}
	allocateID(t, m, n-1)
	var held lock.Locker
	for i := range 5 {
		l := allocate(t, m)
		if i == 2 {
			held = l
		}
	}
	lockWithin(t, held, "the lock is free")
	if err := m.FreeAllLocks(); err != nil {
		t.Fatalf("FreeAllLocks: %v", err)
	}
	wantAvailable(t, m, n, "after FreeAllLocks")
	wantHeld(t, m, nil, "after FreeAllLocks, with a freed lock held")
	a := tryLock(retrieve(t, m, held.ID()))
	if a.blocked(t, "the lock was held before FreeAllLocks") {
		unlock(t, held)
		a.wait(t, patience, "the holder unlocked it")
	}
	unlock(t, a.l)
	seen := make(map[uint32]bool)
	for range n {
		id := allocate(t, m).ID()
		if seen[id] {
			t.Errorf("AllocateLock returned ID %d twice after FreeAllLocks", id)
		}
		seen[id] = true
	}
	_, err := m.AllocateLock()
	wantErr(t, err, lock.ErrNoFreeLocks, "AllocateLock at capacity after FreeAllLocks")
}

// checkAvailableLocks follows the count of available locks through
// successful and failing calls. A manager that reports nil has no maximum.
func checkAvailableLocks(t *testing.T, s *suite) {
	const n = 8
	m, _ := s.new(t, n)
	if c, err := m.AvailableLocks(); err == nil && c == nil {
		t.Skip("AvailableLocks returns nil: no maximum")
	}
	want := uint32(n)
	wantAvailable(t, m, want, "of a new manager")
	b := allocateID(t, m, 5)
	want--
	wantAvailable(t, m, want, "after AllocateAndRetrieveLock")
	a := allocate(t, m)
	want--
	wantAvailable(t, m, want, "after AllocateLock")
	_, _ = m.AllocateAndRetrieveLock(5)                    // fails: allocated
	_, _ = m.AllocateAndRetrieveLock(n)                    // fails: invalid
	_ = retrieve(t, m, lowestOther(a.ID(), b.ID())).Free() // fails: not allocated
	wantAvailable(t, m, want, "after failing calls")
	free(t, a)
	want++
	wantAvailable(t, m, want, "after Free")
	lockWithin(t, b, "the lock is free")
	wantAvailable(t, m, want, "after Lock")
	unlock(t, b)
	allocate(t, m)
	allocate(t, m)
	want -= 2
	wantAvailable(t, m, want, "after AllocateLock")
	if err := m.FreeAllLocks(); err != nil {
		t.Fatalf("FreeAllLocks: %v", err)
	}
	wantAvailable(t, m, n, "after FreeAllLocks")
}

// checkLocksHeld locks some allocated and unallocated locks: LocksHeld
// reports exactly the allocated ones that are held, in ascending order, on
// this handle and on another one.
func checkLocksHeld(t *testing.T, s *suite) {
	const n = 8
	m, addr := s.new(t, n)
	wantHeld(t, m, nil, "of a new manager")
	var ls []lock.Locker
	for range 4 {
		ls = append(ls, allocate(t, m))
	}
	wantHeld(t, m, nil, "with no lock held")
	ids := []uint32{ls[0].ID(), ls[2].ID()}
	slices.Sort(ids)
	lockWithin(t, ls[2], "the lock is free")
	lockWithin(t, ls[0], "the lock is free")
	wantHeld(t, m, ids, "with two allocated locks held")
	unallocated := retrieve(t, m, lowestOther(ls[0].ID(), ls[1].ID(), ls[2].ID(), ls[3].ID()))
	lockWithin(t, unallocated, "the lock is free")
	wantHeld(t, m, ids, "with an unallocated lock held too")
	m2 := s.open(t, addr)
	wantHeld(t, m2, ids, "on a second handle")
	unlock(t, ls[0])
	wantHeld(t, m, []uint32{ls[2].ID()}, "after Unlock")
	free(t, ls[2])
	wantHeld(t, m, nil, "after Free of the held lock")
	unlock(t, ls[2])
	unlock(t, unallocated)
	wantHeld(t, m, nil, "after every Unlock")
}

// checkUsableAfterFree frees a lock, then locks it: it still excludes other
// Lockers with its ID, and stays freed.
func checkUsableAfterFree(t *testing.T, s *suite) {
	const n = 4
	m, _ := s.new(t, n)
	l := allocate(t, m)
	free(t, l)
	lockWithin(t, l, "the lock is free")
	a := tryLock(retrieve(t, m, l.ID()))
	if a.blocked(t, "a freed Locker holds it") {
		unlock(t, l)
		a.wait(t, patience, "the freed Locker unlocked it")
	}
	unlock(t, a.l)
	wantAvailable(t, m, n, "after using a freed lock")
	wantErr(t, l.Free(), lock.ErrNotAllocated, "Free of a freed lock after use")
}

// checkLockDoesNotAllocate locks and unlocks a lock that was never
// allocated: it stays unallocated.
func checkLockDoesNotAllocate(t *testing.T, s *suite) {
	const n = 4
	m, _ := s.new(t, n)
	l := retrieve(t, m, 0)
	lockWithin(t, l, "the lock is free")
	wantAvailable(t, m, n, "while an unallocated lock is held")
	unlock(t, l)
	wantAvailable(t, m, n, "after locking an unallocated lock")
	allocateID(t, m, 0)
}

// checkUnlockUnlockedPanics unlocks locks that are not locked: Unlock
// panics, and the lock still works afterwards.
func checkUnlockUnlockedPanics(t *testing.T, s *suite) {
	m, _ := s.new(t, 4)
	l := retrieve(t, m, 1)
	if panics(l.Unlock) == nil {
		t.Errorf("Unlock of a lock never locked did not panic")
	}
	lockWithin(t, l, "the lock is free")
	unlock(t, l)
	if panics(l.Unlock) == nil {
		t.Errorf("Unlock of an unlocked lock did not panic")
	}
	a := allocate(t, m)
	if panics(a.Unlock) == nil {
		t.Errorf("Unlock of an allocated lock never locked did not panic")
	}
	lockWithin(t, l, "the lock is free after a panicking Unlock")
	unlock(t, l)
}

// checkDistinctIDs holds one lock: every other lock can still be locked.
func checkDistinctIDs(t *testing.T, s *suite) {
	const n = 8
	m, _ := s.new(t, n)
	held := retrieve(t, m, 3)
	lockWithin(t, held, "the lock is free")
	var others []lock.Locker
	for id := range uint32(n) {
		if id != held.ID() {
			l := retrieve(t, m, id)
			lockWithin(t, l, "only a lock with another ID is held")
			others = append(others, l)
		}
	}
	for _, l := range others {
		unlock(t, l)
	}
	unlock(t, held)
}

// checkTwoHandles allocates and frees through two handles on the same
// locks: each sees the other's changes.
func checkTwoHandles(t *testing.T, s *suite) {
	const n = 6
	m1, addr := s.new(t, n)
	m2 := s.open(t, addr)
	a := allocate(t, m1)
	_, err := m2.AllocateAndRetrieveLock(a.ID())
	wantErr(t, err, lock.ErrAllocated, "AllocateAndRetrieveLock on a second handle of a lock allocated on the first")
	b := allocate(t, m2)
	if b.ID() == a.ID() {
		t.Fatalf("AllocateLock on two handles returned ID %d twice", a.ID())
	}
	_, err = m1.AllocateAndRetrieveLock(b.ID())
	wantErr(t, err, lock.ErrAllocated, "AllocateAndRetrieveLock of a lock allocated on another handle")
	wantAvailable(t, m1, n-2, "after allocations on two handles")
	wantAvailable(t, m2, n-2, "after allocations on two handles")
	free(t, retrieve(t, m2, a.ID()))
	allocateID(t, m1, a.ID())
	c := allocateID(t, m2, lowestOther(a.ID(), b.ID()))
	seen := map[uint32]bool{a.ID(): true, b.ID(): true, c.ID(): true}
	for _, m := range []lock.Manager{m1, m2, m1} {
		id := allocate(t, m).ID()
		if seen[id] {
			t.Errorf("AllocateLock returned ID %d, already allocated on a handle", id)
		}
		seen[id] = true
	}
	_, err = m1.AllocateLock()
	wantErr(t, err, lock.ErrNoFreeLocks, "AllocateLock with all locks allocated on two handles")
	if err := m2.FreeAllLocks(); err != nil {
		t.Fatalf("FreeAllLocks: %v", err)
	}
	wantAvailable(t, m1, n, "after FreeAllLocks on the other handle")
	allocateID(t, m1, b.ID())
}

// lowestOther returns the lowest ID that is not in ids.
func lowestOther(ids ...uint32) uint32 {
	for id := uint32(0); ; id++ {
		if !slices.Contains(ids, id) {
			return id
		}
	}
}
