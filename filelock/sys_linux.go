//go:build linux

package filelock

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// The Linux-only part of the system call seam (see sys_unix.go): what
// Holders needs to read the locks directory and match /proc/locks.

// getdents reads directory entries of fd into buf as struct
// linux_dirent64 records, retrying on EINTR. It returns 0 at the end.
func getdents(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// direntOrder is the byte order of struct linux_dirent64: the kernel
// fills it in the machine's own order, big-endian on s390x and ppc64.
var direntOrder binary.ByteOrder = binary.NativeEndian

// procLocksDev formats dev as /proc/locks prints it before the inode:
// "maj:min:", major and minor in hex, at least two digits each.
func procLocksDev(dev uint64) string {
	return fmt.Sprintf("%02x:%02x:", unix.Major(dev), unix.Minor(dev))
}

// renameNoReplace renames oldname in olddirfd to newname in newdirfd
// unless newname exists, in which case it fails with EEXIST. A plain
// rename(2) would replace an empty directory another process may hold
// open; renameat2(RENAME_NOREPLACE) never replaces anything. Kernels
// before 3.15, and a few file systems, answer ENOSYS or EINVAL.
func renameNoReplace(olddirfd int, oldname string, newdirfd int, newname string) error {
	return unix.Renameat2(olddirfd, oldname, newdirfd, newname, unix.RENAME_NOREPLACE)
}
