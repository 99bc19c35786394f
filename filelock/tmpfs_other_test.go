//go:build !linux

package filelock_test

import "testing"

// tmpfsDir returns t.TempDir outside Linux. /dev/shm as a tmpfs, and the
// statfs(2) field and magic number that tell one, are Linux's: OpenBSD and
// NetBSD have neither that field nor, in NetBSD's syscall package,
// Statfs at all.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	return t.TempDir()
}
