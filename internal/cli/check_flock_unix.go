//go:build unix

package cli

import (
	"errors"
	"os"
	"syscall"
)

// openCounter opens the counter file name for reading and writing,
// refusing a symlink planted at its name, without blocking on a FIFO
// planted there, and without making a terminal planted there the
// controlling terminal of a check that leads a session without one (the
// caller refuses anything but a regular file, too late for that). check
// finds counter files by name in the lock directory, where a group member
// may plant anything.
func openCounter(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
}

// lockShared takes a shared flock(2) on f, held until f is closed or the
// process dies: a check and its workers hold one on their counter file.
func lockShared(f *os.File) error {
	return flock(f, syscall.LOCK_SH)
}

// tryLockExclusive takes an exclusive flock(2) on f if no process holds
// a lock on it, and reports whether it did.
func tryLockExclusive(f *os.File) (bool, error) {
	err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
