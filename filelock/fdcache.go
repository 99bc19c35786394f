package filelock

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// fdCache bounds the lock file descriptors a Manager keeps open while their
// locks are not held. It evicts with the clock algorithm: Lock sets a
// state's ref bit, and the hand clears it, closing the first descriptor it
// finds unreferenced and not in use. Eviction takes a state's sem with
// tryAcquire, so it never closes a descriptor that a goroutine is locking or
// holds: a held lock pins its descriptor.
type fdCache struct {
	mu      sync.Mutex
	max     int
	locksFD int // the locks directory; -1 once closed
	open    []*lockState
	hand    int
}

// fdWait is how long openFD sleeps while the process is out of descriptors
// and none of ours can be closed.
const fdWait = 2 * time.Millisecond

// openFD opens the lock file for st, whose sem the caller holds. If the
// process runs out of descriptors it evicts idle ones; if there are none to
// evict it waits for one while wait returns true.
func (m *Manager) openFD(st *lockState, wait func() bool) error {
	c := &m.cache
	name := strconv.FormatUint(uint64(st.id), 10)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.locksFD < 0 {
			return fmt.Errorf("lock %d: %w", st.id, errClosedManager)
		}
		if len(c.open) >= c.max {
			c.evict(len(c.open) - c.max + 1)
		}
		fd, err := m.openOrCreateAt(c.locksFD, name, lockFileFlags)
		if err == nil {
			if err = m.checkLockFile(fd); err == nil {
				st.fd = fd
				st.slot = len(c.open)
				c.open = append(c.open, st)
				return nil
			}
			closeFD(fd)
		}
		if !isTooManyFiles(err) {
			return &fs.PathError{Op: "open", Path: filepath.Join(m.dir, locksName, name), Err: explainOpenFile(err)}
		}
		if c.evict(max(1, len(c.open)/2)) > 0 {
			continue
		}
		if !wait() {
			return &fs.PathError{Op: "open", Path: filepath.Join(m.dir, locksName, name), Err: err}
		}
		c.mu.Unlock()
		time.Sleep(fdWait)
		c.mu.Lock()
	}
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
// st.sem must be held.
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
	if c.locksFD >= 0 {
		closeFD(c.locksFD)
		c.locksFD = -1
	}
}
