package filelock

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// deletedSuffix ends the /proc/PID/fd link of a file whose last name is
// gone.
const deletedSuffix = " (deleted)"

// unlinkedLocks finds FLOCK entries of /proc/locks on the lock directory's
// device whose inode is neither a name in locks/ nor registry.lock, and
// keeps those that a descriptor of their process shows as a deleted file
// under the lock directory. m.regMu is held, so m.dirFD is open.
func (m *Manager) unlinkedLocks() ([]Unlinked, error) {
	// The kernel's own absolute name for the directory: what /proc/PID/fd
	// links of files in it start with, whatever path this Manager used.
	dirPath, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(m.dirFD))
	if err != nil {
		return nil, err
	}
	dirInfo, err := fstat(m.dirFD)
	if err != nil {
		return nil, &os.PathError{Op: "fstat", Path: m.dir, Err: err}
	}
	ls, err := readProcLocks(dirInfo.dev)
	if err != nil || len(ls) == 0 {
		return nil, err
	}
	known := map[uint64]bool{}
	// A cleaner may have removed locks/ itself: then no lock file has a
	// name, and every one still locked is reported.
	if err := m.readLocksDir(func(ino uint64, _ []byte) { known[ino] = true }); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if fi, err := lstatAt(m.dirFD, masterName); err == nil {
		known[fi.ino] = true
	}
	stray := map[int][]procLock{}
	for _, l := range ls {
		if !known[l.ino] && l.pid > 0 {
			stray[l.pid] = append(stray[l.pid], l)
		}
	}
	var us []Unlinked
	for pid, locks := range stray {
		us = append(us, deletedInProcess(pid, locks, dirPath)...)
	}
	return us, nil
}

// deletedInProcess returns the locks among locks, all taken by pid, whose
// file a descriptor of pid shows as deleted from under dirPath: a lock
// file in locks/, or registry.lock.
func deletedInProcess(pid int, locks []procLock, dirPath string) []Unlinked {
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil // exited, or not ours to see
	}
	var us []Unlinked
	seen := map[uint64]bool{}
	for _, e := range ents {
		link := filepath.Join(fdDir, e.Name())
		target, err := os.Readlink(link)
		if err != nil {
			continue
		}
		name, deleted := strings.CutSuffix(target, deletedSuffix)
		if !deleted {
			continue
		}
		if name, deleted = lockNameOf(dirPath, name); !deleted {
			continue
		}
		fi, err := statFollow(link)
		if err != nil || seen[fi.ino] {
			continue
		}
		for _, l := range locks {
			if l.ino == fi.ino {
				seen[fi.ino] = true
				us = append(us, Unlinked{Path: name, PID: pid, Waiting: l.waiting, Exclusive: l.exclusive})
			}
		}
	}
	return us
}

// lockNameOf returns the path of registry.lock or of the lock file of the
// lock directory dirPath that path, a descriptor's file, is, and whether it
// is one. In shared mode a creator opened the file under the temporary
// name it published it from (publish.go), and its descriptor shows that
// name ever after: ".lockdir-tmp.NAME.RANDOM" in the lock directory, for
// registry.lock and for locks/NAME alike.
func lockNameOf(dirPath, path string) (string, bool) {
	dir, base := filepath.Split(path)
	dir = filepath.Clean(dir)
	if rest, ok := strings.CutPrefix(base, tmpPrefix); ok && dir == dirPath {
		if i := strings.LastIndexByte(rest, '.'); i > 0 {
			base = rest[:i]
			if base != masterName {
				dir = filepath.Join(dirPath, locksName)
			}
		}
	}
	switch {
	case dir == dirPath && base == masterName:
		return filepath.Join(dirPath, masterName), true
	case dir == filepath.Join(dirPath, locksName):
		if _, err := strconv.ParseUint(base, 10, 32); err == nil {
			return filepath.Join(dir, base), true
		}
	}
	return "", false
}
