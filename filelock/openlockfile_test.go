//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lockdir/lockdir/lock"
)

// TestOpenLockFile checks the file OpenLockFile gives a program that takes
// the lock itself: lock id's own file, open read-write (NFS needs that for
// an exclusive flock), close-on-exec, and blocking, as os.OpenFile would
// give it, although it was opened O_NONBLOCK to refuse a planted FIFO.
func TestOpenLockFile(t *testing.T) {
	m := create(t, 8)
	f, err := m.OpenLockFile(3)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Name() != m.LockPath(3) {
		t.Errorf("Name() = %q, want %q", f.Name(), m.LockPath(3))
	}
	// Not f.Fd(), which would make the descriptor blocking itself.
	var fd uintptr
	var fl int
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(d uintptr) {
			fd = d
			fl, err = unix.FcntlInt(d, unix.F_GETFL, 0)
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_ACCMODE != unix.O_RDWR {
		t.Errorf("access mode %#o, want O_RDWR", fl&unix.O_ACCMODE)
	}
	if fl&unix.O_NONBLOCK != 0 {
		t.Errorf("O_NONBLOCK is set (flags %#o)", fl)
	}
	if fdfl, err := unix.FcntlInt(fd, unix.F_GETFD, 0); err != nil || fdfl&unix.FD_CLOEXEC == 0 {
		t.Errorf("F_GETFD = %#x, %v: want FD_CLOEXEC", fdfl, err)
	}
	if err := unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("flock: %v", err)
	}
	if _, err := m.OpenLockFile(8); !errors.Is(err, lock.ErrInvalidID) {
		t.Errorf("OpenLockFile(8) of capacity 8: %v, want ErrInvalidID", err)
	}
}
