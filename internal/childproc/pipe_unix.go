//go:build unix

package childproc

import (
	"io"
	"os"
	"syscall"
)

// readNow reads what f, a pipe in non-blocking mode as os.Pipe makes it,
// holds now, without waiting for more: io.EOF if it holds nothing.
func readNow(f *os.File, b []byte) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		n    int
		rerr error
	)
	// Returning true at once from the callback keeps RawConn.Read
	// from waiting for the pipe to be readable.
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = syscall.Read(int(fd), b)
			if rerr != syscall.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN:
		return 0, io.EOF // empty, although a grandchild may hold it open
	case rerr != nil:
		return 0, &os.PathError{Op: "read", Path: f.Name(), Err: rerr}
	case n == 0:
		return 0, io.EOF // closed by every writer
	}
	return n, nil
}
