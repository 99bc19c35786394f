package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockdir/lockdir/filelock"
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

// TestCheckCounterLeftoverIsNotForeign is reliability round two's review
// finding: a check killed with SIGKILL left its counter file in the lock
// directory, and after the registry was lost, 'lockdir init' refused the
// directory as not empty. A counter file now has filelock's temporary
// prefix, which the empty-directory check accepts.
func TestCheckCounterLeftoverIsNotForeign(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ld")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := createCounter(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	m, err := filelock.Create(dir, 16)
	if err != nil {
		t.Fatalf("Create beside a leftover counter file %s: %v", filepath.Base(f.Name()), err)
	}
	m.Close()
}
