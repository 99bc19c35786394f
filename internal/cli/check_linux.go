//go:build linux

package cli

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// filesystem names a statfs(2) f_type.
type filesystem struct {
	magic int64
	name  string
}

// The tables are slices, not maps: the linker lays a slice of constants
// out as data, where a map is built by code in every lockdir process at
// start-up, lock included (issue 12).

// Filesystems where flock(2) does not, or not always, exclude processes on
// other machines or in other mount namespaces, or where the kernel emulates
// it with byte-range locks.
var riskyFilesystems = []filesystem{
	{unix.NFS_SUPER_MAGIC, "nfs"},
	{unix.SMB_SUPER_MAGIC, "smb"},
	{unix.SMB2_SUPER_MAGIC, "smb2"},
	{unix.CIFS_SUPER_MAGIC, "cifs"},
	{unix.V9FS_MAGIC, "9p"},
	{unix.FUSE_SUPER_MAGIC, "fuse"},
	{unix.OVERLAYFS_SUPER_MAGIC, "overlayfs"},
	{unix.CEPH_SUPER_MAGIC, "ceph"},
	{unix.AFS_SUPER_MAGIC, "afs"},
	{unix.AFS_FS_MAGIC, "afs"},
	{unix.CODA_SUPER_MAGIC, "coda"},
	{unix.OCFS2_SUPER_MAGIC, "ocfs2"},
	{unix.NCP_SUPER_MAGIC, "ncp"},
	{0x01161970, "gfs2"},
	{0x0bd00bd0, "lustre"},
	{0x786f4256, "vboxsf"},
}

var localFilesystems = []filesystem{
	{unix.TMPFS_MAGIC, "tmpfs"},
	{unix.EXT4_SUPER_MAGIC, "ext4"}, // also ext2 and ext3
	{unix.XFS_SUPER_MAGIC, "xfs"},
	{unix.BTRFS_SUPER_MAGIC, "btrfs"},
	{0x2fc12fc1, "zfs"},
	{0xf2f52010, "f2fs"},
	{0xca451a4e, "bcachefs"},
	{0x3153464a, "jfs"},
	{0x52654973, "reiserfs"},
	{0x4d44, "vfat"},
	{0x2011bab0, "exfat"},
}

// filesystemInfo names the filesystem that dir is on and returns a warning
// if flock(2) semantics may differ there.
func filesystemInfo(dir string) (name, warning string) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", fmt.Sprintf("cannot tell which filesystem %s is on: %v", dir, err)
	}
	return classifyFilesystem(dir, int64(st.Type))
}

// classifyFilesystem names filesystem type t and warns if it is risky.
func classifyFilesystem(dir string, t int64) (name, warning string) {
	if n, ok := lookupFilesystem(localFilesystems, t); ok {
		return n, ""
	}
	if n, ok := lookupFilesystem(riskyFilesystems, t); ok {
		return n, fmt.Sprintf("%s is on %s, where flock(2) may not exclude processes on other "+
			"machines, in other containers or mount namespaces, or may be emulated with POSIX "+
			"locks; this check runs on this machine only, so passing it proves little. "+
			"Prefer a local filesystem such as tmpfs (/run, $XDG_RUNTIME_DIR)", dir, n)
	}
	return fmt.Sprintf("0x%x", t), ""
}

func lookupFilesystem(fss []filesystem, t int64) (string, bool) {
	for _, fs := range fss {
		if fs.magic == t {
			return fs.name, true
		}
	}
	return "", false
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
