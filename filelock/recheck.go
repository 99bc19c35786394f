package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// A Manager keeps descriptors open: registry.lock's for its whole life,
// and lock files' between locks (fdcache.go). A cleaner that deletes a
// file while nobody holds its flock (systemd-tmpfiles ages lock files,
// whose timestamps flock never changes; see docs/design.md, "Cleaners")
// leaves such a descriptor on an inode that has no name any more. The next
// process to open the name creates a new file, and the two would then lock
// different inodes: two holders of one lock, or two writers of the
// registry. So a Manager checks, after it has taken the flock, that its
// descriptor is still the file that the name leads to, and when it is not,
// lets go, reopens by name and locks again. Checking after the flock
// matters: from then on anyone who opens the name gets the inode this
// Manager holds.
//
// registry.lock is checked on every registry operation: one fstatat, next
// to the tens of microseconds an operation costs. A lock file is checked
// only if recheckAfter has passed since its descriptor was last found
// current: Lock+Unlock on a cached descriptor is two flock calls, and a
// check on each would cost nearly half as much again. So a lock file
// deleted while it is held, or within recheckAfter of its last check, can
// still be split, as a held one always could; one deleted while idle
// longer is noticed at its next Lock.

// recheckAfter is how long a lock file's descriptor is trusted after it
// was last found to be the file its name leads to. Tests change it
// (SetRecheckAfterForTest) before they open a Manager.
var recheckAfter = 10 * time.Millisecond

// errStale says that a descriptor's file no longer has its name.
var errStale = errors.New("file deleted or replaced since it was opened")

// now is the time since the cache was made, the clock of lockState.checked.
func (c *fdCache) now() int64 { return int64(time.Since(c.epoch)) }

// recheckDue reports whether st's descriptor is due a check. st's turn
// must be the caller's.
func (c *fdCache) recheckDue(st *lockState) bool {
	return c.now()-st.checked >= int64(recheckAfter)
}

// recheck checks that st's descriptor is the lock file that its name in
// locks/ leads to, and returns errStale if it is not. st's turn must be
// the caller's.
func (c *fdCache) recheck(st *lockState) error {
	c.mu.Lock()
	if c.locksFD < 0 {
		c.mu.Unlock()
		return errClosedManager
	}
	err := stillNamed(st.fd, c.locksFD, lockName(st.id))
	c.mu.Unlock()
	if err == nil {
		st.checked = c.now()
	}
	return err
}

// stillNamed checks that fd is the file that name in dirfd leads to, and
// returns errStale if the name is gone or leads to another file.
func stillNamed(fd, dirfd int, name string) error {
	fi, err := fstat(fd)
	if err != nil {
		return err
	}
	return sameFile(fi, dirfd, name)
}

// sameFile checks that name in dirfd is fi's file, as stillNamed does.
func sameFile(fi fileInfo, dirfd int, name string) error {
	cur, err := lstatAt(dirfd, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errStale
	case err != nil:
		return err
	case cur.dev != fi.dev || cur.ino != fi.ino:
		return errStale
	}
	return nil
}

// drop closes st's descriptor, found stale, so that the next flock opens
// the file by name again. st's turn must be the caller's.
func (c *fdCache) drop(st *lockState) {
	c.mu.Lock()
	c.closeLocked(st)
	c.mu.Unlock()
}

// locksDirGone reports whether locks/ no longer is the directory that the
// cache's descriptor is open on: a cleaner removed it (once it had emptied
// it), and perhaps a later Open made a new one. c.mu must be held.
func (m *Manager) locksDirGone() bool {
	return stillNamed(m.cache.locksFD, m.dirFD, locksName) == errStale
}

// reopenLocksDir opens locks/ afresh, creating it if need be, as Open
// does, in place of the cache's descriptor of a removed one. c.mu must be
// held.
func (m *Manager) reopenLocksDir() error {
	c := &m.cache
	fd, err := m.openLocksDir()
	if err != nil {
		return err
	}
	closeFD(c.locksFD)
	c.locksFD = fd
	return nil
}

// openMaster opens registry.lock, creating it if need be, checks it and
// records which file it is.
func (m *Manager) openMaster() error {
	path := filepath.Join(m.dir, masterName)
	fd, err := m.openOrCreateAt(m.dirFD, masterName, lockFileFlags)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: explainOpenFile(err)}
	}
	m.masterFD = fd
	fi, err := fstat(fd)
	if err == nil {
		err = checkLockFileInfo(fi)
	}
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if err := m.checkOwnedSettling(fd, false); err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	m.master = fi
	return nil
}

// lockCurrentMaster takes the master lock with how on the registry.lock
// that the name leads to now: if the file this Manager opened was deleted
// or replaced, it lets go, opens the current one (creating it, as Open
// would, if it is missing) and locks again.
func (m *Manager) lockCurrentMaster(how int) error {
	path := filepath.Join(m.dir, masterName)
	for range 10 {
		if m.masterFD < 0 {
			if err := m.openMaster(); err != nil {
				m.closeMaster()
				return err
			}
		}
		if err := m.lockMaster(how); err != nil {
			return err
		}
		err := sameFile(m.master, m.dirFD, masterName)
		if err == nil {
			return nil
		}
		m.unlockMaster()
		if err != errStale {
			return &fs.PathError{Op: "stat", Path: path, Err: err}
		}
		m.closeMaster()
	}
	return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("master lock: %w", errStale)}
}

// closeMaster closes registry.lock's descriptor, if open.
func (m *Manager) closeMaster() {
	if m.masterFD >= 0 {
		closeFD(m.masterFD)
		m.masterFD = -1
	}
}
