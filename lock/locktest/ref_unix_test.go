//go:build unix

package locktest_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lockdir/lockdir/lock"
)

// refManager is a simple reference implementation of lock.Manager, to test
// the suite with: correct, not fast.
//
// In its directory, the file registry holds one byte per lock, 1 if
// allocated, and is read and written under an exclusive flock of the file
// registry.lock. The lock with ID n is an exclusive flock of the file
// locks/n, taken on a new file descriptor by each Lock. Within the process,
// Lockers of the same file also go through a semaphore, which orders their
// critical sections for the race detector and guards the descriptor.
type refManager struct {
	dir      string
	capacity uint32
}

// refLocks maps the path of each lock file in use in this process to its
// in-process state.
var refLocks = struct {
	sync.Mutex
	m map[string]*refState
}{m: make(map[string]*refState)}

type refState struct {
	sem  chan struct{} // holds a token while some Locker holds the lock
	mu   sync.Mutex    // guards f
	f    *os.File      // the flocked file while held, else nil
	path string
}

type refLocker struct {
	m  *refManager
	id uint32
	st *refState
}

// newRef creates a reference lock set in a new directory.
func newRef(t *testing.T, capacity uint32) (lock.Manager, string) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "registry"), make([]byte, capacity), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := openRef(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m, dir
}

// openRef opens the reference lock set in dir.
func openRef(dir string) (lock.Manager, error) {
	fi, err := os.Stat(filepath.Join(dir, "registry"))
	if err != nil {
		return nil, err
	}
	return &refManager{dir: dir, capacity: uint32(fi.Size())}, nil
}

// flock calls unix.Flock, retrying on EINTR.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// update calls fn with the registry, under the master lock, and writes the
// registry back if fn reports a change.
func (m *refManager) update(fn func(reg []byte) (changed bool, err error)) error {
	master, err := os.OpenFile(filepath.Join(m.dir, "registry.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer master.Close()
	if err := flock(master, unix.LOCK_EX); err != nil {
		return err
	}
	path := filepath.Join(m.dir, "registry")
	reg, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	changed, err := fn(reg)
	if err != nil || !changed {
		return err
	}
	return os.WriteFile(path, reg, 0o600)
}

func (m *refManager) check(id uint32) error {
	if id >= m.capacity {
		return fmt.Errorf("lock %d, capacity %d: %w", id, m.capacity, lock.ErrInvalidID)
	}
	return nil
}

func (m *refManager) locker(id uint32) *refLocker {
	path := filepath.Join(m.dir, "locks", strconv.FormatUint(uint64(id), 10))
	refLocks.Lock()
	defer refLocks.Unlock()
	st := refLocks.m[path]
	if st == nil {
		st = &refState{sem: make(chan struct{}, 1), path: path}
		refLocks.m[path] = st
	}
	return &refLocker{m: m, id: id, st: st}
}

func (m *refManager) AllocateLock() (lock.Locker, error) {
	id := -1
	err := m.update(func(reg []byte) (bool, error) {
		for i, b := range reg {
			if b == 0 {
				reg[i] = 1
				id = i
				return true, nil
			}
		}
		return false, fmt.Errorf("capacity %d: %w", m.capacity, lock.ErrNoFreeLocks)
	})
	if err != nil {
		return nil, err
	}
	return m.locker(uint32(id)), nil
}

func (m *refManager) RetrieveLock(id uint32) (lock.Locker, error) {
	if err := m.check(id); err != nil {
		return nil, err
	}
	return m.locker(id), nil
}

func (m *refManager) AllocateAndRetrieveLock(id uint32) (lock.Locker, error) {
	if err := m.check(id); err != nil {
		return nil, err
	}
	err := m.update(func(reg []byte) (bool, error) {
		if reg[id] != 0 {
			return false, fmt.Errorf("lock %d: %w", id, lock.ErrAllocated)
		}
		reg[id] = 1
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return m.locker(id), nil
}

func (m *refManager) FreeAllLocks() error {
	return m.update(func(reg []byte) (bool, error) {
		clear(reg)
		return true, nil
	})
}

func (m *refManager) AvailableLocks() (*uint32, error) {
	var n uint32
	err := m.update(func(reg []byte) (bool, error) {
		for _, b := range reg {
			if b == 0 {
				n++
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func (m *refManager) LocksHeld() ([]uint32, error) {
	var held []uint32
	err := m.update(func(reg []byte) (bool, error) {
		for id, b := range reg {
			if b == 0 {
				continue
			}
			h, err := m.locker(uint32(id)).held()
			if err != nil {
				return false, err
			}
			if h {
				held = append(held, uint32(id))
			}
		}
		return false, nil
	})
	return held, err
}

// held reports whether any process holds the lock, by trying to take it
// on a new file descriptor without blocking.
func (l *refLocker) held() (bool, error) {
	f, err := os.OpenFile(l.st.path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	switch err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err {
	case nil:
		return false, nil
	case unix.EWOULDBLOCK:
		return true, nil
	default:
		return false, err
	}
}

func (l *refLocker) ID() uint32 { return l.id }

func (l *refLocker) Lock() {
	l.st.sem <- struct{}{}
	f, err := os.OpenFile(l.st.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		panic(err)
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		panic(err)
	}
	l.st.mu.Lock()
	l.st.f = f
	l.st.mu.Unlock()
}

func (l *refLocker) Unlock() {
	l.st.mu.Lock()
	f := l.st.f
	l.st.f = nil
	l.st.mu.Unlock()
	if f == nil {
		panic(fmt.Sprintf("unlock of unlocked lock %d", l.id))
	}
	if err := f.Close(); err != nil {
		panic(err)
	}
	<-l.st.sem
}

func (l *refLocker) Free() error {
	return l.m.update(func(reg []byte) (bool, error) {
		if reg[l.id] == 0 {
			return false, fmt.Errorf("lock %d: %w", l.id, lock.ErrNotAllocated)
		}
		reg[l.id] = 0
		return true, nil
	})
}
