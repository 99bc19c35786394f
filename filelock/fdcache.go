package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"
)

// fdCache keeps a Manager's lock file descriptors open between locks, and
// indexes the in-process state of each lock ID it knows of.
//
// It bounds the descriptors kept open while their locks are not held,
// evicting with the clock algorithm: Lock sets a state's ref bit, and the
// hand clears it, closing the first descriptor it finds unreferenced and not
// in use. Eviction takes a state with tryAcquire, so it never closes a
// descriptor that a goroutine is locking or holds: a held lock pins its
// descriptor.
//
// A descriptor opened for an ID's first Lock starts on probation: once more
// than probationSize are open, the oldest idle one is closed at the next
// first open. Only an ID opened a second time stays in the cache. This is
// for the short-lived process that touches many locks once each (a
// container engine's ps): keeping every descriptor would grow the kernel's
// descriptor table past its initial 64 slots, and every growth of the
// table of a multithreaded process, as every Go process is, waits for an
// RCU grace period, about 10 ms each on this machine at 256, 512, 1,024,
// 2,048 slots and so on. Closing one descriptor per new one keeps the
// numbers low and the table small, as a process that closes each file
// after use does.
//
// byID is what makes every Locker for an ID from one Manager the same lock
// in the process: they share one in-process readers-writer state, so that
// one Locker's Unlock releases another's Lock, and their goroutines queue
// on it rather than each in flock(2) on a descriptor of its own. A state
// therefore stays in byID, descriptor or not, until the Manager is closed:
// a Locker may hold on to it for ever, and a second state for the same ID
// would split the lock (an Unlock through one Locker of a Lock through
// another would panic, and a reader through one could pass a writer
// waiting through the other). It costs about 100 bytes per ID touched.
type fdCache struct {
	mu      sync.Mutex
	max     int
	locksFD int // the locks directory; -1 once closed
	open    []*lockState
	hand    int
	byID    map[uint32]*lockState

	probation []*lockState // first opens, oldest first

	epoch time.Time // the clock of lockState.checked (recheck.go)
}

// probationSize is how many descriptors of first opens stay open at most
// (unless their locks are held). It is well within the 64 descriptors a
// process's table starts with.
const probationSize = 16

// fdWait is how long openFD sleeps while the process is out of descriptors
// and no lockdir descriptor in the process can be closed.
const fdWait = 2 * time.Millisecond

// defaultMaxOpen is the bound on idle descriptors when WithMaxOpenFiles is
// not given: half the process's descriptor limit (which the Go runtime
// raises to the hard limit at start-up), between 1,024 and 65,536. A
// short-lived process that touches every lock once then closes none of
// them, and a process near its limit still gets its descriptors back,
// because running out makes every Manager evict (see evictAnywhere).
func defaultMaxOpen() int {
	n, err := fileLimit()
	if err != nil {
		return 1024
	}
	return int(min(max(n/2, 1024), 65536))
}

// state returns the state of id that the cache knows of, or a new one.
// fresh says id was just allocated (see lockState.fresh).
func (c *fdCache) state(id uint32, fresh bool) *lockState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.byID[id]; st != nil {
		if fresh && st.fd < 0 {
			st.fresh = true
		}
		return st
	}
	st := newLockState(id)
	st.fresh = fresh
	if c.byID == nil {
		c.byID = make(map[uint32]*lockState)
	}
	c.byID[id] = st
	return st
}

// openFD opens the lock file for st, whose in-process lock the caller
// holds. If the process runs out of descriptors it evicts idle ones, this
// Manager's first and then any other Manager's; if none in the process can
// be evicted, it waits for one while wait returns true.
func (m *Manager) openFD(st *lockState, wait func() bool) error {
	c := &m.cache
	name := lockName(st.id)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.locksFD < 0 {
			return fmt.Errorf("lock %d: %w", st.id, errClosedManager)
		}
		if len(c.open) >= c.max {
			c.evict(len(c.open) - c.max + 1)
		}
		if st.opens == 0 && len(c.probation) >= probationSize {
			c.endProbation(len(c.probation) - probationSize + 1)
		}
		fd, err := m.openLockFile(c.locksFD, name, st.fresh)
		st.fresh = false
		if err == nil {
			c.add(st, fd)
			st.checked = c.now()
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) && m.locksDirGone() {
			if err := m.reopenLocksDir(); err != nil {
				return err
			}
			continue
		}
		if !isTooManyFiles(err) {
			return &fs.PathError{Op: "open", Path: m.LockPath(st.id), Err: explainOpenFile(err)}
		}
		if c.evict(max(1, len(c.open)/2)) > 0 {
			continue
		}
		c.mu.Unlock()
		freed := evictAnywhere(c)
		if freed == 0 && wait() {
			time.Sleep(fdWait)
		}
		c.mu.Lock()
		if freed == 0 && !wait() {
			return &fs.PathError{Op: "open", Path: m.LockPath(st.id), Err: err}
		}
	}
}

// openLockFile opens (creating if need be) the lock file name in the locks
// directory. In shared mode it also refuses a file that is not a regular
// file, which a group member could have planted: a FIFO, say, on which
// flock(1) would block forever. In a private directory nobody but its owner
// (and root) can create entries, so the check would cost a system call per
// first Lock of an ID and protect against nothing; see docs/design.md.
//
// An ID just allocated most likely has no lock file yet (fresh): in a
// private directory its first open then tries O_CREAT|O_EXCL first, which
// costs one call for a new file, instead of an open that fails first, and
// two for a reused ID's existing file, as before. In a shared directory a
// new file is published whole (publish.go), which costs too much to try
// on a file that may exist.
func (m *Manager) openLockFile(locksFD int, name string, fresh bool) (int, error) {
	var fd int
	var err error
	if fresh && m.opts.gid < 0 {
		fd, err = m.createInPlaceAt(locksFD, name, lockFileFlags)
	} else {
		fd, err = m.openOrCreateAt(locksFD, name, lockFileFlags)
	}
	if err != nil || m.opts.gid < 0 {
		return fd, err
	}
	if err := m.checkLockFile(fd); err != nil {
		closeFD(fd)
		return -1, err
	}
	return fd, nil
}

// add records st's new descriptor fd. c.mu and st's in-process lock must be
// held.
func (c *fdCache) add(st *lockState, fd int) {
	st.fd = fd
	st.slot = len(c.open)
	c.open = append(c.open, st)
	if st.opens < 2 {
		st.opens++
	}
	if st.opens == 1 {
		c.probation = append(c.probation, st)
	}
}

// endProbation closes up to n idle descriptors on probation, oldest first,
// and drops from probation those that are closed already. Busy ones stay
// on probation. c.mu must be held.
func (c *fdCache) endProbation(n int) {
	kept := c.probation[:0]
	for _, st := range c.probation {
		switch {
		case st.slot < 0 || st.opens != 1:
			// Closed already, by eviction or Close, and perhaps opened
			// again since, which took it off probation.
		case n > 0 && st.tryAcquire():
			c.closeLocked(st)
			st.release()
			n--
		default:
			kept = append(kept, st)
		}
	}
	clear(c.probation[len(kept):])
	c.probation = kept
}

// evict closes up to n idle descriptors and returns how many it closed.
// c.mu must be held.
func (c *fdCache) evict(n int) int {
	closed := 0
	for steps := 2 * len(c.open); closed < n && steps > 0 && len(c.open) > 0; steps-- {
		if c.hand >= len(c.open) {
			c.hand = 0
		}
		st := c.open[c.hand]
		if st.ref.Swap(false) || !st.tryAcquire() {
			c.hand++
			continue
		}
		c.closeLocked(st)
		st.release()
		closed++
	}
	return closed
}

// closeLocked closes st's descriptor and drops it from the cache. c.mu and
// st's in-process lock must be held.
func (c *fdCache) closeLocked(st *lockState) {
	if st.fd >= 0 {
		closeFD(st.fd)
		st.fd = -1
	}
	if i := st.slot; i >= 0 {
		last := len(c.open) - 1
		c.open[i] = c.open[last]
		c.open[i].slot = i
		c.open[last] = nil
		c.open = c.open[:last]
		st.slot = -1
	}
}

// dropIdle closes st's descriptor unless a goroutine is locking or holds
// it, in which case that goroutine's Unlock will.
func (c *fdCache) dropIdle(st *lockState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.tryAcquire() {
		c.closeLocked(st)
		st.release()
	}
}

// close closes every idle descriptor and the locks directory. Descriptors
// of held locks are closed by their Unlock.
func (c *fdCache) close() {
	unregisterCache(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < len(c.open); {
		st := c.open[i]
		if st.tryAcquire() {
			c.closeLocked(st)
			st.release()
			continue
		}
		i++
	}
	clear(c.byID)
	c.probation = nil
	if c.locksFD >= 0 {
		closeFD(c.locksFD)
		c.locksFD = -1
	}
}
