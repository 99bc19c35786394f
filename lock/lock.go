// Package lock defines the interface of a multiprocess lock manager: a set of
// numbered locks that exclude other goroutines and other processes alike.
//
// The interface is Podman's libpod/lock contract, extended with the
// AvailableLocks and LocksHeld methods of later Podman versions. Package
// github.com/lockdir/lockdir/filelock implements it with one flock(2)-locked
// file per lock, and package locktest checks any implementation against it.
//
// lock.go holds the whole contract: the interfaces and the sentinel errors.
package lock

import "errors"

// Manager allocates multiprocess locks, each named by a small integer ID.
//
// Locks returned by a Manager are multiprocess: a lock allocated in process A
// and retrieved by its ID in process B is the same lock, and holding it in A
// excludes B until A unlocks it.
//
// Every lock is identified by its ID, as returned by Locker.ID. All Lockers
// with the same ID refer to the same underlying lock, and it is always
// possible to retrieve a lock given its ID. Distinct IDs refer to distinct
// locks.
//
// AllocateLock returns a unique, unallocated ID and fails once every
// available lock is allocated. Free returns a lock to the pool, after which it
// may be allocated again.
type Manager interface {
	// AllocateLock returns an unallocated lock and marks it allocated.
	// The same lock is not returned again by AllocateLock until Free has
	// been called on it. If every lock is allocated, AllocateLock returns
	// an error matching ErrNoFreeLocks.
	AllocateLock() (Locker, error)

	// RetrieveLock returns the lock with the given ID. The lock is the
	// same underlying lock as every other Locker with that ID, in this
	// process or any other. Retrieving a lock does not allocate it.
	RetrieveLock(id uint32) (Locker, error)

	// AllocateAndRetrieveLock marks the lock with the given ID as
	// allocated and returns it. It returns an error matching ErrAllocated
	// if the lock is already allocated. It is mostly used after a restart
	// to repopulate the set of allocated locks.
	AllocateAndRetrieveLock(id uint32) (Locker, error)

	// FreeAllLocks frees every allocated lock, in preparation for
	// reallocation.
	//
	// It is dangerous: it makes the allocation state inconsistent with
	// whatever still uses the locks, and it races with other processes
	// that allocate or free locks at the same time. Use it only in tests
	// or while renumbering locks, when nothing else uses the manager.
	// It changes allocation state only: held locks stay held.
	FreeAllLocks() error

	// AvailableLocks returns how many locks can still be allocated, or nil
	// if there is no maximum.
	AvailableLocks() (*uint32, error)

	// LocksHeld returns the IDs of the allocated locks that some process
	// holds right now, in ascending order.
	LocksHeld() ([]uint32, error)
}

// Locker is a lock with mutex semantics: one holder at a time, across
// goroutines and processes. It is like sync.Locker, with a method to free
// the lock for reuse.
//
// All Lockers with the same ID refer to the same underlying lock, even in
// different processes.
type Locker interface {
	// ID returns the lock's ID. Calling RetrieveLock with it returns
	// another Locker for the same lock.
	ID() uint32

	// Lock locks the lock, blocking until it is acquired. It has no error
	// result: an implementation panics on a fatal error.
	Lock()

	// Unlock unlocks the lock. It panics on a fatal error, and when the
	// lock is not locked.
	Unlock()

	// Free marks the lock unallocated, so that AllocateLock may return it
	// again. The Locker stays usable after Free: holders of stale
	// references may still lock and unlock it.
	Free() error
}

// Errors returned by Manager and Locker implementations. Check them with
// errors.Is: implementations wrap them with the ID, path or capacity
// involved.
var (
	// ErrNoFreeLocks is returned by AllocateLock when every lock is
	// allocated.
	ErrNoFreeLocks = errors.New("no free locks")

	// ErrInvalidID is returned for a lock ID greater than or equal to the
	// manager's capacity.
	ErrInvalidID = errors.New("invalid lock ID")

	// ErrAllocated is returned by AllocateAndRetrieveLock for an ID that
	// is already allocated.
	ErrAllocated = errors.New("lock already allocated")

	// ErrNotAllocated is returned by Free for an ID that is not
	// allocated.
	ErrNotAllocated = errors.New("lock not allocated")

	// ErrCorrupt is returned when the manager's persistent state cannot be
	// trusted. The wrapping error names the file. The state is never reset
	// silently: repair or recreate it by hand.
	ErrCorrupt = errors.New("lock registry is corrupt")

	// ErrClosed is returned by methods of a closed manager.
	ErrClosed = errors.New("lock manager is closed")
)
