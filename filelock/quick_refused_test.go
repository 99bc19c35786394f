//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestQuickOpenLockFileMasterRefused checks QuickOpenLockFile's promise
// (quick.go, docs/design.md, docs/cli.md) that a directory Open refuses is
// left to the long way, untouched, for a registry.lock that Open refuses:
// the short way's first version never opened or checked registry.lock
// (review of issue 12).
func TestQuickOpenLockFileMasterRefused(t *testing.T) {
	checkQuickRefused(t, []refusedCase{
		{name: "registry.lock a symlink", setup: func(t *testing.T, dir string) {
			// To a real, empty regular file, as registry.lock is, so that
			// only the link itself can make the short way decline.
			master := filepath.Join(dir, masterName)
			real := filepath.Join(t.TempDir(), "real")
			if err := os.Rename(master, real); err != nil {
				t.Fatal(err)
			}
			symlink(t, real, master)
		}},
		{name: "registry.lock world-writable", setup: func(t *testing.T, dir string) {
			chmod(t, filepath.Join(dir, masterName), 0o666)
		}},
		{name: "registry.lock a FIFO", setup: func(t *testing.T, dir string) {
			master := filepath.Join(dir, masterName)
			remove(t, master)
			if err := unix.Mkfifo(master, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "registry.lock a directory", setup: func(t *testing.T, dir string) {
			master := filepath.Join(dir, masterName)
			remove(t, master)
			mkdir(t, master, 0o700)
		}},
		{name: "registry.lock another user's", setup: func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give registry.lock away")
			}
			if err := os.Lchown(filepath.Join(dir, masterName), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
	})
}

// TestQuickOpenLockFileDamagedPage checks the promise of docs/cli.md
// ("Opening") that a damaged directory goes the way every other command
// goes, with the same messages and codes, for a registry whose header is
// sound but whose bitmap page fails its CRC: Open refuses it with
// lock.ErrCorrupt, and the short way's first version, which read only the
// header, took it and created a lock file there (review of issue 12).
func TestQuickOpenLockFileDamagedPage(t *testing.T) {
	checkQuickRefused(t, []refusedCase{
		{name: "bitmap page damaged", setup: func(t *testing.T, dir string) {
			// A bit in page 0's bitmap, under the page's CRC.
			patchFile(t, filepath.Join(dir, registryName), pagesOff+pageHdrLen, 0x01)
		}},
	})
}

// A refusedCase damages a lock directory of capacity 8 so that Open
// refuses it.
type refusedCase struct {
	name  string
	setup func(t *testing.T, dir string)
}

// checkQuickRefused checks, for each case, that Open refuses the damaged
// directory (else the case proves nothing) and that QuickOpenLockFile then
// declines it and leaves it exactly as it was.
func checkQuickRefused(t *testing.T, cases []refusedCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := newLockDir(t)
			tc.setup(t, dir)
			before := snapshot(t, dir)
			if m, err := Open(dir); err == nil {
				m.Close()
				t.Fatal("Open took the directory: the case is not one Open refuses")
			} else {
				t.Logf("Open: %v", err)
			}
			checkSnapshot(t, "Open", dir, before)
			f, ok := QuickOpenLockFile(dir, 3)
			if ok {
				f.Close()
				t.Errorf("QuickOpenLockFile took a directory Open refuses")
			}
			checkSnapshot(t, "QuickOpenLockFile", dir, before)
		})
	}
}
