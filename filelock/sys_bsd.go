//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import "golang.org/x/sys/unix"

// renameNoReplace would rename without replacing, as renameat2 does on
// Linux. These systems have no common call for it, so it reports ENOSYS
// and a directory is made in place instead (see publish.go).
func renameNoReplace(olddirfd int, oldname string, newdirfd int, newname string) error {
	return unix.ENOSYS
}
