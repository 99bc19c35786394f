package main

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestClassifyFilesystem(t *testing.T) {
	for _, tc := range []struct {
		t    int64
		name string
		warn bool
	}{
		{unix.TMPFS_MAGIC, "tmpfs", false},
		{unix.EXT4_SUPER_MAGIC, "ext4", false},
		{unix.NFS_SUPER_MAGIC, "nfs", true},
		{unix.CIFS_SUPER_MAGIC, "cifs", true},
		{unix.SMB2_SUPER_MAGIC, "smb2", true},
		{unix.V9FS_MAGIC, "9p", true},
		{unix.FUSE_SUPER_MAGIC, "fuse", true},
		{unix.OVERLAYFS_SUPER_MAGIC, "overlayfs", true},
		{0x12345678, "0x12345678", false},
	} {
		name, warn := classifyFilesystem("/d", tc.t)
		if name != tc.name || (warn != "") != tc.warn {
			t.Errorf("type %#x: got %q, %q; want %q, warning %v", tc.t, name, warn, tc.name, tc.warn)
		}
		if tc.warn && !strings.Contains(warn, "/d is on "+tc.name) {
			t.Errorf("type %#x: warning %q does not name the directory and filesystem", tc.t, warn)
		}
	}
}

func TestFilesystemInfo(t *testing.T) {
	name, _ := filesystemInfo(t.TempDir())
	if name == "" {
		t.Errorf("filesystemInfo(TempDir) gave no name")
	}
}
