package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/lockdir/lockdir/lock"
)

// Manager is a lock directory opened by this process. It implements
// lock.Manager. A Manager is safe for concurrent use by multiple goroutines,
// and any number of Managers, in any number of processes, may have the same
// directory open at once.
type Manager struct {
	dir      string
	opts     options
	dirFD    int // the lock directory
	masterFD int // registry.lock, flocked around registry access
	// master is masterFD's fstat, to notice its file deleted or replaced
	// (recheck.go).
	master fileInfo

	// regMu serializes registry access within the process: a flock held
	// through masterFD does not exclude other goroutines using the same
	// descriptor.
	regMu sync.Mutex
	reg   registryFile

	closed atomic.Bool

	// capacity is the capacity of the registry this Manager last read,
	// kept so that RetrieveLock can check an ID without a system call.
	capacity atomic.Uint32

	cache fdCache
}

var _ lock.Manager = (*Manager)(nil)

func (m *Manager) errID(id, capacity uint32) error {
	return fmt.Errorf("lock %d in %s: capacity is %d: %w", id, m.dir, capacity, lock.ErrInvalidID)
}

// change sets (alloc) or clears the bit of the ID that pick chooses.
func (m *Manager) change(alloc bool, pick func(v *view) (uint32, error)) (uint32, error) {
	var id uint32
	err := m.withRegistry(true, func(v *view) error {
		var err error
		if id, err = pick(v); err != nil {
			return err
		}
		if id >= v.capacity {
			return m.errID(id, v.capacity)
		}
		cur, err := v.page(id / bitsPerPage)
		if err != nil {
			return wrapPath(err, m.reg.path)
		}
		buf := m.reg.buffers()
		old := buf.oldPage[:]
		copy(old, cur)
		p, err := v.updatePage(buf.newPage[:], id, alloc, v.maxSeq()+1)
		switch {
		case errors.Is(err, errAlreadySet):
			return fmt.Errorf("lock %d in %s: %w", id, m.dir, lock.ErrAllocated)
		case errors.Is(err, errAlreadyClear):
			return fmt.Errorf("free lock %d in %s: %w", id, m.dir, lock.ErrNotAllocated)
		case err != nil:
			return wrapPath(err, m.reg.path)
		}
		return m.reg.commit(id/bitsPerPage, old, p)
	})
	return id, err
}

// AllocateLock is Allocate, for lock.Manager.
func (m *Manager) AllocateLock() (lock.Locker, error) { return asLocker(m.Allocate()) }

// AllocateAndRetrieveLock is AllocateAndRetrieve, for lock.Manager.
func (m *Manager) AllocateAndRetrieveLock(id uint32) (lock.Locker, error) {
	return asLocker(m.AllocateAndRetrieve(id))
}

// RetrieveLock is Retrieve, for lock.Manager.
func (m *Manager) RetrieveLock(id uint32) (lock.Locker, error) { return asLocker(m.Retrieve(id)) }

// asLocker returns l as a lock.Locker, or a nil interface (not a nil
// *Locker in one) with err.
func asLocker(l *Locker, err error) (lock.Locker, error) {
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Allocate allocates the lowest free ID and returns its lock. When every
// lock is allocated it fails with an error matching lock.ErrNoFreeLocks.
func (m *Manager) Allocate() (*Locker, error) {
	id, err := m.change(true, func(v *view) (uint32, error) {
		id, ok, err := v.lowestFree()
		if err != nil {
			return 0, wrapPath(err, m.reg.path)
		}
		if !ok {
			return 0, fmt.Errorf("allocate lock in %s: all %d locks are allocated; free unused locks, or raise the capacity with Resize (lockdir resize N): %w", m.dir, v.capacity, lock.ErrNoFreeLocks)
		}
		return id, nil
	})
	if err != nil {
		return nil, err
	}
	return m.allocated(id), nil
}

// AllocateAndRetrieve allocates the lock with the given ID and returns it.
// It fails with an error matching lock.ErrAllocated if the lock is already
// allocated, and lock.ErrInvalidID if id is not below the capacity.
func (m *Manager) AllocateAndRetrieve(id uint32) (*Locker, error) {
	if _, err := m.change(true, func(*view) (uint32, error) { return id, nil }); err != nil {
		return nil, err
	}
	return m.allocated(id), nil
}

// free clears id's allocation.
func (m *Manager) free(id uint32) error {
	_, err := m.change(false, func(*view) (uint32, error) { return id, nil })
	return err
}

// Retrieve returns the lock with the given ID, whether or not it is
// allocated; retrieving does not allocate. It fails with an error matching
// lock.ErrInvalidID if id is not below the capacity.
//
// Retrieve checks id against the capacity this Manager last read from
// the registry, and reads the registry again only when id is not below
// it, so that an ID added by another process's Resize is still found. It
// makes no system call in the common case. After another process shrinks
// the directory, Retrieve may therefore return a Locker for an ID
// beyond the new capacity until this Manager next reads the registry (any
// other Manager method does). That Locker is as usable as one obtained
// before the shrink: Lock never consults the registry, and every
// allocation checks the current capacity.
func (m *Manager) Retrieve(id uint32) (*Locker, error) {
	if m.closed.Load() {
		return nil, lock.ErrClosed
	}
	if id < m.capacity.Load() {
		return m.locker(id), nil
	}
	err := m.withRegistry(false, func(v *view) error {
		if id >= v.capacity {
			return m.errID(id, v.capacity)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m.locker(id), nil
}

// FreeAllLocks marks every lock unallocated, replacing the registry
// atomically. It changes allocation state only: locks that are held stay
// held, and lock files stay in place. Read lock.Manager's warning first: it
// is meant for tests and renumbering.
func (m *Manager) FreeAllLocks() error {
	return m.withRegistry(true, func(v *view) error {
		return m.reg.replace(m.dirFD, newRegistry(v.capacity, nil))
	})
}

// Resize changes the capacity to numLocks, keeping every allocation.
// Growing always works. Shrinking works only if no allocated ID is numLocks
// or above; otherwise it fails, naming those IDs, with an error matching
// lock.ErrAllocated. Lock files of IDs beyond a shrunken capacity are left
// in place. The registry is replaced atomically.
func (m *Manager) Resize(numLocks uint32) error {
	if err := checkCapacity(numLocks); err != nil {
		return fmt.Errorf("resize %s: %w", m.dir, err)
	}
	return m.withRegistry(true, func(v *view) error {
		if numLocks == v.capacity {
			return nil
		}
		ids, err := v.allocatedIDs()
		if err != nil {
			return wrapPath(err, m.reg.path)
		}
		var over []uint32
		for _, id := range ids {
			if id >= numLocks {
				over = append(over, id)
			}
		}
		if len(over) > 0 {
			return fmt.Errorf("resize %s from %d to %d locks: %d allocated IDs are %d or above (%s); free them first: %w",
				m.dir, v.capacity, numLocks, len(over), numLocks, formatIDs(over, 10), lock.ErrAllocated)
		}
		if err := m.reg.replace(m.dirFD, newRegistry(numLocks, ids)); err != nil {
			return err
		}
		m.capacity.Store(numLocks)
		return nil
	})
}

// formatIDs lists ids, eliding all but the first n.
func formatIDs(ids []uint32, n int) string {
	var b []byte
	for i, id := range ids {
		if i == n {
			b = fmt.Appendf(b, " and %d more", len(ids)-n)
			break
		}
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendUint(b, uint64(id), 10)
	}
	return string(b)
}

// AvailableLocks returns how many locks can still be allocated: the
// capacity minus the allocated count. It is never nil.
func (m *Manager) AvailableLocks() (*uint32, error) {
	var n uint32
	err := m.withRegistry(false, func(v *view) error {
		c, err := v.allocatedCount()
		if err != nil {
			return wrapPath(err, m.reg.path)
		}
		n = v.capacity - c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// Capacity returns how many locks the directory has room for.
func (m *Manager) Capacity() (uint32, error) {
	var n uint32
	err := m.withRegistry(false, func(v *view) error {
		n = v.capacity
		return nil
	})
	return n, err
}

// Allocated returns the allocated IDs in ascending order.
func (m *Manager) Allocated() ([]uint32, error) {
	var ids []uint32
	err := m.withRegistry(false, func(v *view) error {
		var err error
		ids, err = v.allocatedIDs()
		return wrapPath(err, m.reg.path)
	})
	return ids, err
}

// Dir returns the lock directory.
func (m *Manager) Dir() string { return m.dir }

// LockPath returns the file that holds the lock with the given ID. A shell
// script takes the same lock as a Go program with flock(1) on this file:
//
//	flock "$(lockdir path 7)" command
//
// The file is created on the lock's first use and never removed while the
// directory is in use.
func (m *Manager) LockPath(id uint32) string {
	return filepath.Join(m.dir, locksName, lockName(id))
}

// lockName is the name of lock id's file in locks/: the ID in decimal. It
// is the one place that names lock files.
func lockName(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// LockFile returns LockPath(id) after creating the file if it is missing,
// with the directory's documented mode and group, so that a shell script's
// flock(1) does not create it with its umask's mode instead. It fails with
// an error matching lock.ErrInvalidID if id is not below the capacity. It
// neither allocates nor locks the lock.
func (m *Manager) LockFile(id uint32) (string, error) {
	fd, err := m.openLockFileFD(id)
	if err != nil {
		return "", err
	}
	closeFD(fd)
	return m.LockPath(id), nil
}

// OpenLockFile opens lock id's file as LockFile makes it, on a descriptor
// of the caller's own, for a program that takes the lock with flock(2)
// itself, as the lockdir command does, rather than through a Locker. The
// file is checked to be a regular file on this very descriptor, so a file
// swapped in by name afterwards (a FIFO, say) cannot be opened instead. It
// is opened read-write (NFS needs that for an exclusive flock) and
// close-on-exec; the Locker's in-process exclusion does not cover it.
func (m *Manager) OpenLockFile(id uint32) (*os.File, error) {
	fd, err := m.openLockFileFD(id)
	if err != nil {
		return nil, err
	}
	return m.lockFile(fd, id)
}

// lockFile makes fd, lock id's file as openLockFileAt opened and checked
// it, an *os.File. It is made a blocking descriptor again, as os.OpenFile
// gives: os.NewFile would otherwise try to add it to the Go runtime's
// poller, which sets the poller up (an epoll descriptor, an eventfd) in a
// short-lived process that never needs it (issue 12), and a command that
// inherits it (lockdir lock -F) gets an ordinary descriptor.
func (m *Manager) lockFile(fd int, id uint32) (*os.File, error) {
	if err := setBlocking(fd); err != nil {
		closeFD(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: m.LockPath(id), Err: err}
	}
	return os.NewFile(uintptr(fd), m.LockPath(id)), nil
}

// openLockFileFD opens, creating it if need be, and checks lock id's file.
func (m *Manager) openLockFileFD(id uint32) (int, error) {
	if _, err := m.Retrieve(id); err != nil {
		return -1, err
	}
	c := &m.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locksFD < 0 {
		return -1, fmt.Errorf("lock %d in %s: %w", id, m.dir, lock.ErrClosed)
	}
	fd, err := m.openLockFileAt(c.locksFD, id)
	if ranOutOfFiles(err) {
		c.mu.Unlock()
		freed := m.freeDescriptors()
		c.mu.Lock()
		if freed && c.locksFD >= 0 {
			fd, err = m.openLockFileAt(c.locksFD, id)
		}
	}
	return fd, err
}

// openLockFileAt opens lock id's file in locksFD, the directory locks/,
// creating it if need be, and checks that it is a regular file.
func (m *Manager) openLockFileAt(locksFD int, id uint32) (int, error) {
	fd, err := m.openOrCreateAt(locksFD, lockName(id), lockFileFlags)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: m.LockPath(id), Err: explainOpenFile(err)}
	}
	if err := m.checkLockFile(fd); err != nil {
		closeFD(fd)
		return -1, &fs.PathError{Op: "open", Path: m.LockPath(id), Err: err}
	}
	return fd, nil
}

// Close releases the Manager's descriptors and mapping. Locks held through
// it stay held until their Unlock, which then closes their descriptor; any
// other use of its Lockers afterwards panics (Lock, TryLock) or returns
// lock.ErrClosed. Close is idempotent.
func (m *Manager) Close() error {
	m.regMu.Lock()
	defer m.regMu.Unlock()
	if m.closed.Swap(true) {
		return nil
	}
	err := m.reg.close()
	m.cache.close()
	for _, fd := range []*int{&m.masterFD, &m.dirFD} {
		if *fd >= 0 {
			err = errors.Join(err, closeFD(*fd))
			*fd = -1
		}
	}
	return err
}

// locker returns a Locker for id, sharing the in-process state of the other
// Lockers for id that this Manager's descriptor cache still knows of.
func (m *Manager) locker(id uint32) *Locker {
	return &Locker{m: m, st: m.cache.state(id, false)}
}

// allocated is locker for an ID just allocated, whose lock file most likely
// does not exist yet, so that its first Lock tries to create the file
// first rather than after an open that fails.
func (m *Manager) allocated(id uint32) *Locker {
	return &Locker{m: m, st: m.cache.state(id, true)}
}
