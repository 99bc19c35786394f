package filelock

import (
	"cmp"
	"slices"
)

// Holder is a process holding a lock (or, from Waiters, waiting for one),
// as the kernel reports it.
type Holder struct {
	ID        uint32 // the lock's ID
	PID       int    // the process that took the lock; 0 if it is in another PID namespace
	Exclusive bool   // an exclusive lock (as Lock takes), not a shared one (flock -s)
	Allocated bool   // the ID is allocated in the registry
}

// Holders returns every process holding a lock of this directory whose ID
// is below the capacity, allocated or not, ordered by ID and PID. It takes
// no lock to find out: on Linux it reads /proc/locks. Elsewhere it fails
// with an error matching errors.ErrUnsupported.
//
// The PID is that of the process that took the lock. A child that inherited
// the descriptor across fork holds the lock too, but is not listed. A
// process is listed once per lock and mode. The kernel gives its table a
// page at a time, and one that changes between two pages can skip or
// repeat an entry, so Holders reads it until two reads agree (at most four
// times, then their union): a lock taken or released while it reads may
// still be missing or shown. LockUsers lists the IDs beyond the capacity
// too.
func (m *Manager) Holders() ([]Holder, error) {
	var (
		alloc []uint32
		hs    []Holder
	)
	// heldLocks runs under regMu, where Close cannot close m.dirFD.
	err := m.withRegistry(false, func(v *view) error {
		var err error
		if alloc, err = v.allocatedIDs(); err != nil {
			return wrapPath(err, m.reg.path)
		}
		hs, err = m.heldLocks(v.capacity)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range hs {
		_, hs[i].Allocated = slices.BinarySearch(alloc, hs[i].ID)
	}
	return sortHolders(hs), nil
}

// Waiters returns every process blocked in flock(2) waiting for a lock of
// this directory whose ID is below the capacity, ordered by ID and PID,
// with Exclusive saying what it asked for. A Lock, LockContext or
// `lockdir lock` that waits in the kernel shows here, as does flock(1)
// without -n; one that polls with LOCK_NB does not. Like Holders, it takes
// no lock, reads /proc/locks, and elsewhere fails with an error matching
// errors.ErrUnsupported.
func (m *Manager) Waiters() ([]Holder, error) {
	var (
		alloc []uint32
		ws    []Holder
	)
	err := m.withRegistry(false, func(v *view) error {
		var err error
		if alloc, err = v.allocatedIDs(); err != nil {
			return wrapPath(err, m.reg.path)
		}
		ws, err = m.waitingLocks(v.capacity)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range ws {
		_, ws[i].Allocated = slices.BinarySearch(alloc, ws[i].ID)
	}
	return sortHolders(ws), nil
}

// LockUsers returns the processes holding and the processes waiting for a
// lock of this directory, as Holders and Waiters do, except that it also
// lists IDs at or beyond the capacity, with Allocated false, and reads the
// kernel's table once for both. After a shrink a process can still hold
// such a lock: Resize refuses to drop allocated IDs only, and flock(2) on a
// lock file needs no allocation (flock(1) on a path from LockFile, or a
// Locker retrieved before the shrink). Holders leaves them out, so that
// RetrieveLock accepts every ID it returns; lockdir status shows them, as
// locks in use. Compare an ID with Capacity to tell them apart.
func (m *Manager) LockUsers() (holders, waiters []Holder, err error) {
	var alloc []uint32
	err = m.withRegistry(false, func(v *view) error {
		var err error
		if alloc, err = v.allocatedIDs(); err != nil {
			return wrapPath(err, m.reg.path)
		}
		// No lock file of this directory has a name of MaxLocks or more.
		holders, waiters, err = m.lockTable(MaxLocks)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	for _, hs := range [][]Holder{holders, waiters} {
		for i := range hs {
			_, hs[i].Allocated = slices.BinarySearch(alloc, hs[i].ID)
		}
	}
	return sortHolders(holders), sortHolders(waiters), nil
}

// LocksHeld returns the IDs of the allocated locks that some process holds
// right now, in ascending order, without taking any lock. See Holders.
func (m *Manager) LocksHeld() ([]uint32, error) {
	hs, err := m.Holders()
	if err != nil {
		return nil, err
	}
	ids := []uint32{}
	for _, h := range hs {
		if h.Allocated && (len(ids) == 0 || ids[len(ids)-1] != h.ID) {
			ids = append(ids, h.ID)
		}
	}
	return ids, nil
}

// sortHolders orders hs by ID, PID and mode, and lists each once: the
// kernel writes /proc/locks a page at a time, each under its lock, and an
// entry can come twice when the table changes between two pages (found
// under load by TestHolders).
func sortHolders(hs []Holder) []Holder {
	slices.SortFunc(hs, func(a, b Holder) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.PID, b.PID), cmpBool(a.Exclusive, b.Exclusive))
	})
	return slices.Compact(hs)
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
