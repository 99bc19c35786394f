package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"
)

// lockFileFlags is how lock files and registry.lock are opened: for
// reading and writing, although lockdir never writes them, because NFSv4
// refuses an exclusive flock on a descriptor not open for writing (EBADF;
// see docs/design.md). openAt adds O_NOFOLLOW, O_CLOEXEC, O_NONBLOCK and
// O_NOCTTY.
const lockFileFlags = oRDWR

func (m *Manager) dirPerm() uint32 {
	if m.opts.gid >= 0 {
		return 0o2770
	}
	return 0o700
}

func (m *Manager) filePerm() fs.FileMode {
	if m.opts.gid >= 0 {
		return 0o660
	}
	return 0o600
}

// isTempName reports whether name, a directory entry of a lock directory
// or of its parent, is a temporary name of publish.go: a file or
// directory being created, or left behind by a creator that was killed.
// Code that lists a lock directory must skip such names.
func isTempName(name string) bool { return strings.HasPrefix(name, tmpPrefix) }

// openOrCreateAt opens name in the directory dirfd with flags, creating it
// first if it does not exist. A file it creates gets the manager's file mode
// exactly, whatever the umask, and in shared mode its group, before any
// other member can see it (publishFileAt).
//
// Opening an existing file is one openat in either mode.
func (m *Manager) openOrCreateAt(dirfd int, name string, flags int) (int, error) {
	fd, err := openAt(dirfd, name, flags, 0)
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, fs.ErrNotExist) && m.opts.gid < 0:
		fd, err = m.createInPlaceAt(dirfd, name, flags)
	case errors.Is(err, fs.ErrNotExist):
		fd, err = m.publishFileAt(dirfd, name, flags)
	}
	if errors.Is(err, fs.ErrPermission) && m.opts.gid >= 0 {
		// Only a member without hard links (createInPlaceAt) leaves a
		// file that others cannot open yet.
		err = m.settle(func() error {
			fd, err = openAt(dirfd, name, flags, 0)
			return err
		})
	}
	if errors.Is(err, fs.ErrPermission) {
		err = m.explainDenied(dirfd, name, err)
	}
	return fd, err
}

// explainDenied turns EACCES from opening name for writing into the
// reason checkOwned gives, when it can open it for reading: "owned by uid
// 0 ..." says more than "permission denied".
func (m *Manager) explainDenied(dirfd int, name string, err error) error {
	fd, rerr := openAt(dirfd, name, oRDONLY, 0)
	if rerr != nil {
		return err
	}
	defer closeFD(fd)
	if cerr := m.checkOwned(fd, false); cerr != nil {
		return cerr
	}
	return err
}

// makeDir makes the directory path (relative to dirfd) with the manager's
// mode and in shared mode its group, unless it exists.
func (m *Manager) makeDir(dirfd int, path string) error {
	if m.opts.gid < 0 {
		return m.mkdirInPlaceAt(dirfd, path)
	}
	if _, err := lstatAt(dirfd, path); !errors.Is(err, fs.ErrNotExist) {
		return nil // the open that follows reports any other error
	}
	err := m.publishDirAt(dirfd, path)
	// Leftovers of earlier creators killed mid-way, next to it.
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	cleanTemps(dirfd, dir, tmpPrefix+name+".")
	return err
}

// openDir opens the directory path (relative to dirfd), which in shared
// mode another member may be making in place this instant (mkdirInPlaceAt,
// where renameat2 is missing).
func (m *Manager) openDir(dirfd int, path string) (int, error) {
	fd, err := openAt(dirfd, path, oRDONLY|oDIRECTORY, 0)
	if err != nil && errors.Is(err, fs.ErrPermission) {
		err = m.settle(func() error {
			fd, err = openAt(dirfd, path, oRDONLY|oDIRECTORY, 0)
			return err
		})
	}
	return fd, err
}

// chmodShared gives a file this manager created its exact mode, whatever
// the umask, and in shared mode its group.
func (m *Manager) chmodShared(fd int, perm uint32) error {
	if m.opts.gid >= 0 {
		if err := fchown(fd, -1, m.opts.gid); err != nil {
			return err
		}
	}
	return fchmod(fd, perm)
}

// maxDenied is how many times settle retries, a millisecond apart.
const maxDenied = 100

// settle retries op while it fails with a permission error, for up to
// 100 ms, in shared mode. It covers the one window publish.go cannot close:
// where the file system has no hard links or no RENAME_NOREPLACE, another
// member makes a file or directory in place, and until its fchown and
// fchmod it has that member's umask and primary group.
func (m *Manager) settle(op func() error) error {
	err := op()
	for i := 0; err != nil && m.opts.gid >= 0 && errors.Is(err, fs.ErrPermission) && i < maxDenied; i++ {
		time.Sleep(time.Millisecond)
		err = op()
	}
	return err
}

// checkOwnedSettling is checkOwned for a file or directory that another
// member of the shared group may be making in place (see settle).
func (m *Manager) checkOwnedSettling(fd int, wantDir bool) error {
	return m.settle(func() error { return m.checkOwned(fd, wantDir) })
}

// errUnsafe wraps fs.ErrPermission for files filelock refuses to trust.
func errUnsafe(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), fs.ErrPermission)
}

// checkOwned refuses a file or directory that another user could tamper
// with: one owned by someone else (outside the shared group), or writable by
// others.
func (m *Manager) checkOwned(fd int, wantDir bool) error {
	fi, err := fstat(fd)
	if err != nil {
		return err
	}
	return m.checkOwnedInfo(fi, wantDir)
}

// checkOwnedInfo is checkOwned on fi, a file's fstat.
func (m *Manager) checkOwnedInfo(fi fileInfo, wantDir bool) error {
	switch {
	case wantDir && !fi.isDir():
		return errors.New("not a directory")
	case !wantDir && !fi.isReg():
		return errors.New("not a regular file")
	}
	shared := m.opts.gid >= 0 && int(fi.gid) == m.opts.gid
	euid := geteuid()
	if int(fi.uid) != euid && !shared {
		return errUnsafe("owned by uid %d, not by this process's uid %d; refusing a lock directory another user controls", fi.uid, euid)
	}
	if fi.mode&0o002 != 0 {
		return errUnsafe("world-writable (mode %#o); any user could tamper with the locks", fi.mode&0o7777)
	}
	if fi.mode&0o020 != 0 && !shared {
		return errUnsafe("group-writable (mode %#o); use the shared-group option (WithSharedGroup) with group %d, or chmod g-w", fi.mode&0o7777, fi.gid)
	}
	return nil
}

// checkLockFile refuses a lock file that is not a regular file: a FIFO,
// device or directory planted in its place.
func (m *Manager) checkLockFile(fd int) error {
	fi, err := fstat(fd)
	if err != nil {
		return err
	}
	return checkLockFileInfo(fi)
}

// checkLockFileInfo is checkLockFile on fi, a file's fstat.
func checkLockFileInfo(fi fileInfo) error {
	if !fi.isReg() {
		return fmt.Errorf("lock file is not a regular file (type %#o)", fi.typ)
	}
	return nil
}

// cleanLeftovers removes, in shared mode, the temporary files and
// directories that members killed while creating left in the lock
// directory. In private mode there are none: nothing is published.
//
// In either mode it removes registry.tmp, the temporary registry of
// versions before the staging directory, left by one killed while it
// replaced the registry: nothing reads it, and nothing else would ever
// remove it. The caller holds the master lock, under which those versions
// wrote it too, so it is never one being written. unlinkat(2) removes a
// symlink planted at the name, never what it points to, and refuses a
// directory.
func (m *Manager) cleanLeftovers() {
	if m.opts.gid >= 0 {
		cleanTemps(m.dirFD, ".", tmpPrefix)
	}
	_ = unlinkAt(m.dirFD, tmpName)
}
