package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"time"
)

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

// openOrCreateAt opens name in the directory dirfd with flags, creating it
// first if it does not exist. A file it creates gets the manager's file mode
// exactly, whatever the umask, and in shared mode its group.
func (m *Manager) openOrCreateAt(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := openAt(dirfd, name, flags, 0)
		if !errors.Is(err, fs.ErrNotExist) {
			return fd, err
		}
		fd, err = openAt(dirfd, name, flags|oCREAT|oEXCL, uint32(m.filePerm()))
		if errors.Is(err, fs.ErrExist) {
			continue // created by someone else since; open theirs
		}
		if err != nil {
			return fd, err
		}
		if err := m.chmodShared(fd, uint32(m.filePerm())); err != nil {
			closeFD(fd)
			return -1, err
		}
		return fd, nil
	}
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

// checkOwnedSettling is checkOwned for a directory another member of the
// shared group may have created a moment ago: until its creator's fchown
// and fchmod, it has the creator's primary group and mode. In shared mode a
// refusal is retried for up to 100 ms before it stands.
func (m *Manager) checkOwnedSettling(fd int, wantDir bool) error {
	err := m.checkOwned(fd, wantDir)
	for i := 0; err != nil && m.opts.gid >= 0 && errors.Is(err, fs.ErrPermission) && i < maxDenied; i++ {
		time.Sleep(time.Millisecond)
		err = m.checkOwned(fd, wantDir)
	}
	return err
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

// maxDenied is how many times openFD retries EACCES in shared mode, a
// millisecond apart.
const maxDenied = 100

// checkLockFile refuses a lock file that is not a regular file: a FIFO,
// device or directory planted in its place.
func (m *Manager) checkLockFile(fd int) error {
	fi, err := fstat(fd)
	if err != nil {
		return err
	}
	if !fi.isReg() {
		return fmt.Errorf("lock file is not a regular file (type %#o)", fi.typ)
	}
	return nil
}
