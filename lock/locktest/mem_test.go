package locktest_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockdir/lockdir/lock"
	"github.com/lockdir/lockdir/lock/locktest"
)

// bugs selects deliberate bugs of memManager.
type bugs uint

const (
	bugHighestFirst      bugs = 1 << iota // AllocateLock returns the highest free ID
	bugFreeLeaks                          // Free succeeds but does not free
	bugPlainErrors                        // errors do not wrap the sentinels
	bugNoInvalidCheck                     // IDs beyond the capacity wrap around
	bugRetrieveAllocates                  // RetrieveLock allocates
	bugUnlockNoPanic                      // Unlock of an unlocked lock does nothing
	bugFreeAllUnlocks                     // FreeAllLocks releases held locks
	bugHeldIgnoresAlloc                   // LocksHeld reports unallocated locks
	bugFreedUnusable                      // a freed Locker no longer locks
	bugNoExclusion                        // Lock never blocks
	bugAllocRace                          // AllocateLock checks, then marks later
	bugNotShared                          // every handle has its own locks
)

// memManager is an in-memory lock.Manager with optional bugs. Without bugs
// it is correct within one process, and only within it: every process that
// opens an address gets locks of its own.
type memManager struct {
	set  *memSet
	bugs bugs
}

// memSet is the state of the locks at one address.
type memSet struct {
	mu        sync.Mutex
	allocated []bool
	locks     []*memLock
}

type memLock struct {
	sem     chan struct{} // holds a token while the lock is held
	mu      sync.Mutex
	holders int // guarded by mu
}

type memLocker struct {
	m     *memManager
	id    uint32
	l     *memLock
	freed atomic.Bool
}

// memSets holds the memSet of each address in this process.
var memSets = struct {
	sync.Mutex
	m map[string]*memSet
}{m: make(map[string]*memSet)}

// memHarness returns a harness for memManagers with the given bugs.
func memHarness(b bugs) locktest.Harness {
	return locktest.Harness{
		New: func(t *testing.T, capacity uint32) (lock.Manager, string) {
			addr := fmt.Sprintf("mem/%d/%d/%s", b, capacity, t.TempDir())
			m, err := openMem(addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				memSets.Lock()
				delete(memSets.m, addr)
				memSets.Unlock()
			})
			return m, addr
		},
		Open: openMem,
	}
}

// openMem opens the address mem/<bugs>/<capacity>/<unique name>.
func openMem(addr string) (lock.Manager, error) {
	var b bugs
	var capacity uint32
	if _, err := fmt.Sscanf(addr, "mem/%d/%d/", &b, &capacity); err != nil {
		return nil, fmt.Errorf("bad address %q: %v", addr, err)
	}
	memSets.Lock()
	defer memSets.Unlock()
	set := memSets.m[addr]
	if set == nil || b&bugNotShared != 0 {
		set = &memSet{allocated: make([]bool, capacity)}
		for range capacity {
			set.locks = append(set.locks, &memLock{sem: make(chan struct{}, 1)})
		}
		if memSets.m[addr] == nil {
			memSets.m[addr] = set
		}
	}
	return &memManager{set: set, bugs: b}, nil
}

// wrap returns err wrapping sentinel, or not with bugPlainErrors.
func (m *memManager) wrap(sentinel error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if m.bugs&bugPlainErrors != 0 {
		return errors.New(msg + ": " + sentinel.Error())
	}
	return fmt.Errorf("%s: %w", msg, sentinel)
}

// index returns the index of id, or an error.
func (m *memManager) index(id uint32) (uint32, error) {
	n := uint32(len(m.set.locks))
	if id >= n {
		if m.bugs&bugNoInvalidCheck != 0 && n > 0 {
			return id % n, nil
		}
		return 0, m.wrap(lock.ErrInvalidID, "lock %d", id)
	}
	return id, nil
}

func (m *memManager) locker(id, i uint32) lock.Locker {
	return withShared(&memLocker{m: m, id: id, l: m.set.locks[i]})
}

func (m *memManager) AllocateLock() (lock.Locker, error) {
	s := m.set
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.allocated)
	for k := range n {
		i := k
		if m.bugs&bugHighestFirst != 0 {
			i = n - 1 - k
		}
		if s.allocated[i] {
			continue
		}
		if m.bugs&bugAllocRace != 0 {
			s.mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			s.mu.Lock()
		}
		s.allocated[i] = true
		return m.locker(uint32(i), uint32(i)), nil
	}
	return nil, m.wrap(lock.ErrNoFreeLocks, "capacity %d", n)
}

func (m *memManager) RetrieveLock(id uint32) (lock.Locker, error) {
	i, err := m.index(id)
	if err != nil {
		return nil, err
	}
	if m.bugs&bugRetrieveAllocates != 0 {
		m.set.mu.Lock()
		m.set.allocated[i] = true
		m.set.mu.Unlock()
	}
	return m.locker(id, i), nil
}

func (m *memManager) AllocateAndRetrieveLock(id uint32) (lock.Locker, error) {
	i, err := m.index(id)
	if err != nil {
		return nil, err
	}
	m.set.mu.Lock()
	defer m.set.mu.Unlock()
	if m.set.allocated[i] {
		return nil, m.wrap(lock.ErrAllocated, "lock %d", id)
	}
	m.set.allocated[i] = true
	return m.locker(id, i), nil
}

func (m *memManager) FreeAllLocks() error {
	m.set.mu.Lock()
	defer m.set.mu.Unlock()
	clear(m.set.allocated)
	if m.bugs&bugFreeAllUnlocks != 0 {
		for _, l := range m.set.locks {
			l.mu.Lock()
			if l.holders > 0 {
				l.holders = 0
				<-l.sem
			}
			l.mu.Unlock()
		}
	}
	return nil
}

func (m *memManager) AvailableLocks() (*uint32, error) {
	m.set.mu.Lock()
	defer m.set.mu.Unlock()
	var n uint32
	for _, a := range m.set.allocated {
		if !a {
			n++
		}
	}
	return &n, nil
}

func (m *memManager) LocksHeld() ([]uint32, error) {
	m.set.mu.Lock()
	defer m.set.mu.Unlock()
	var ids []uint32
	for i, l := range m.set.locks {
		l.mu.Lock()
		held := l.holders > 0
		l.mu.Unlock()
		if held && (m.set.allocated[i] || m.bugs&bugHeldIgnoresAlloc != 0) {
			ids = append(ids, uint32(i))
		}
	}
	return ids, nil
}

func (l *memLocker) ID() uint32 { return l.id }

func (l *memLocker) Lock() {
	if l.freed.Load() && l.m.bugs&bugFreedUnusable != 0 {
		return
	}
	if l.m.bugs&bugNoExclusion == 0 {
		l.l.sem <- struct{}{}
	}
	l.l.mu.Lock()
	l.l.holders++
	l.l.mu.Unlock()
}

func (l *memLocker) Unlock() {
	if l.freed.Load() && l.m.bugs&bugFreedUnusable != 0 {
		return
	}
	l.l.mu.Lock()
	if l.l.holders == 0 {
		l.l.mu.Unlock()
		if l.m.bugs&bugUnlockNoPanic != 0 {
			return
		}
		panic(fmt.Sprintf("unlock of unlocked lock %d", l.id))
	}
	l.l.holders--
	l.l.mu.Unlock()
	if l.m.bugs&bugNoExclusion == 0 {
		<-l.l.sem
	}
}

func (l *memLocker) Free() error {
	s := l.m.set
	s.mu.Lock()
	defer s.mu.Unlock()
	i := l.id % uint32(len(s.allocated))
	if !s.allocated[i] {
		return l.m.wrap(lock.ErrNotAllocated, "lock %d", l.id)
	}
	if l.m.bugs&bugFreeLeaks == 0 {
		s.allocated[i] = false
	}
	l.freed.Store(true)
	return nil
}

// openAny opens a memManager or a refManager, by the form of addr.
func openAny(addr string) (lock.Manager, error) {
	if strings.HasPrefix(addr, "mem/") {
		return openMem(addr)
	}
	return openRef(addr)
}
