package filelock_test

import (
	"os"
	"syscall"
	"testing"
)

// tmpfsDir returns a fresh directory on tmpfs (/dev/shm), where lock
// directories normally live and creating files is cheap, or t.TempDir if
// there is none. It is removed at the end of the test.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	var st syscall.Statfs_t
	const tmpfsMagic = 0x01021994
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != tmpfsMagic {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "lockdir-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
