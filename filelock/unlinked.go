package filelock

import (
	"cmp"
	"slices"

	"github.com/lockdir/lockdir/lock"
)

// Unlinked is a lock file or registry.lock that a process has locked, or
// waits to lock, although its name has been deleted: by a cleaner such as
// systemd-tmpfiles, which ages files by mtime (flock never updates it), or
// by hand. The next process to use the name creates a new file, and the
// two no longer exclude each other: two holders of one lock, or two
// master locks. Stop everything that uses the directory and restart it;
// see docs/design.md, Cleaners.
type Unlinked struct {
	Path      string // the deleted name, as the kernel remembers it (absolute)
	PID       int    // the process holding (or waiting for) the deleted file
	Waiting   bool   // blocked in flock(2) rather than holding the lock
	Exclusive bool   // an exclusive lock, not a shared one
}

// Unlinked returns every deleted lock file or registry.lock of this
// directory that some process still has locked or waits for, ordered by
// path and PID. It takes no lock. On Linux it matches /proc/locks against
// the names in the directory, then confirms each stray inode through
// /proc/PID/fd, whose link for a deleted file ends in " (deleted)"; a
// process whose descriptors this process may not read (another user's,
// without root) cannot be seen. Elsewhere it fails with an error matching
// errors.ErrUnsupported.
func (m *Manager) Unlinked() ([]Unlinked, error) {
	m.regMu.Lock()
	defer m.regMu.Unlock()
	if m.closed.Load() {
		return nil, lock.ErrClosed
	}
	us, err := m.unlinkedLocks()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(us, func(a, b Unlinked) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.PID, b.PID))
	})
	return us, nil
}
