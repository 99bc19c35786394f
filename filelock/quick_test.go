//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestQuickOpenLockFile checks that QuickOpenLockFile gives, on a healthy
// lock directory, the file OpenLockFile gives, and that it leaves every
// other directory to the long way, untouched: it creates nothing, repairs
// nothing and follows no planted link.
func TestQuickOpenLockFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) // on a lock directory of capacity 8
		id    uint32
		opts  []Option
		ok    bool
	}{
		{name: "healthy", id: 3, ok: true},
		{name: "lock file exists", id: 3, ok: true, setup: func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, locksName, "3"), "")
		}},
		{name: "highest ID", id: 7, ok: true},
		{name: "journal record to redo", id: 3, ok: true, setup: func(t *testing.T, dir string) {
			writeJournalOnly(t, dir, 5) // a writer stopped between its two writes
		}},
		{name: "ID out of range", id: 8},
		{name: "not there", setup: func(t *testing.T, dir string) { removeAll(t, dir) }},
		{name: "not a lock directory yet", setup: func(t *testing.T, dir string) {
			removeAll(t, dir)
			mkdir(t, dir, 0o700)
		}},
		{name: "registry lost", setup: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, registryName)) }},
		{name: "header damaged", setup: func(t *testing.T, dir string) {
			patchFile(t, filepath.Join(dir, registryName), hdrCapacity, 9)
		}},
		{name: "registry too long", setup: func(t *testing.T, dir string) {
			patchFile(t, filepath.Join(dir, registryName), int(registrySize(8)), 0)
		}},
		{name: "registry a symlink", setup: func(t *testing.T, dir string) {
			// To the real registry, whole and healthy, so that only the
			// link itself can make the short way decline.
			reg := filepath.Join(dir, registryName)
			real := filepath.Join(t.TempDir(), "real")
			if err := os.Rename(reg, real); err != nil {
				t.Fatal(err)
			}
			symlink(t, real, reg)
		}},
		{name: "no locks/", setup: func(t *testing.T, dir string) { removeAll(t, filepath.Join(dir, locksName)) }},
		{name: "lock file a FIFO", id: 3, setup: func(t *testing.T, dir string) {
			if err := unix.Mkfifo(filepath.Join(dir, locksName, "3"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "lock file a symlink", id: 3, setup: func(t *testing.T, dir string) {
			symlink(t, filepath.Join(t.TempDir(), "victim"), filepath.Join(dir, locksName, "3"))
		}},
		{name: "directory group-writable", setup: func(t *testing.T, dir string) { chmod(t, dir, 0o770) }},
		{name: "locks/ world-writable", setup: func(t *testing.T, dir string) { chmod(t, filepath.Join(dir, locksName), 0o707) }},
		{name: "registry another user's", setup: func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give the registry away")
			}
			if err := os.Lchown(filepath.Join(dir, registryName), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "faults injected", opts: []Option{withFs(newFaultFs())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newLockDir(t)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			var before map[string]treeEntry
			if _, err := os.Lstat(dir); err == nil {
				before = snapshot(t, dir)
			}
			f, ok := QuickOpenLockFile(dir, tc.id, tc.opts...)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				if f != nil {
					t.Errorf("f = %v with ok false, want nil", f)
				}
				if before == nil {
					if _, err := os.Lstat(dir); err == nil {
						t.Errorf("created %s", dir)
					}
				} else {
					checkSnapshot(t, "QuickOpenLockFile", dir, before)
				}
				return
			}
			defer f.Close()
			checkQuickFile(t, f, dir, tc.id)
		})
	}
}

// checkQuickFile checks that f is lock id's file in dir as OpenLockFile
// would give it: the same file, by the same name, open read-write,
// blocking and close-on-exec, with the directory's file mode.
func checkQuickFile(t *testing.T, f *os.File, dir string, id uint32) {
	t.Helper()
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if f.Name() != m.LockPath(id) {
		t.Errorf("Name() = %q, want %q", f.Name(), m.LockPath(id))
	}
	want, err := m.OpenLockFile(id)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	var got, exp unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(int(want.Fd()), &exp); err != nil {
		t.Fatal(err)
	}
	if got.Dev != exp.Dev || got.Ino != exp.Ino {
		t.Errorf("inode %d, OpenLockFile's %d", got.Ino, exp.Ino)
	}
	if mode := uint32(got.Mode) & 0o7777; mode != uint32(m.filePerm()) {
		t.Errorf("mode %#o, want %#o", mode, m.filePerm())
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_ACCMODE != unix.O_RDWR || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("flags %#o, want O_RDWR without O_NONBLOCK", fl)
	}
	if fdfl, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil || fdfl&unix.FD_CLOEXEC == 0 {
		t.Errorf("F_GETFD = %#x, %v: want FD_CLOEXEC", fdfl, err)
	}
}

// TestQuickOpenLockFileShared checks the short way in shared mode: with
// the group, a member's directory is taken and the lock file made 0660;
// without it, a group-writable directory is left to the long way, which
// refuses it.
func TestQuickOpenLockFileShared(t *testing.T) {
	gid := os.Getgid()
	dir := newLockDir(t, WithSharedGroup(gid))
	if f, ok := QuickOpenLockFile(dir, 5); ok {
		f.Close()
		t.Error("a shared directory was taken without WithSharedGroup")
	}
	f, ok := QuickOpenLockFile(dir, 5, WithSharedGroup(gid))
	if !ok {
		t.Fatal("shared directory not taken with its group")
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o660 || int(fi.Sys().(*syscall.Stat_t).Gid) != gid {
		t.Errorf("lock file mode %#o group %d, want 0660 and group %d", mode, fi.Sys().(*syscall.Stat_t).Gid, gid)
	}
}

// TestQuickOpenLockFileSkipsMasterLock checks that the short way does not
// wait for the master lock, which a stopped or hung 'lockdir alloc' can
// hold for ever: it reads the registry without it, since nobody changes
// the header in place, and a page caught mid-write fails its checksum.
func TestQuickOpenLockFileSkipsMasterLock(t *testing.T) {
	dir := newLockDir(t)
	master, err := os.OpenFile(filepath.Join(dir, masterName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := unix.Flock(int(master.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() {
		f, ok := QuickOpenLockFile(dir, 2)
		if ok {
			f.Close()
		}
		done <- ok
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Error("QuickOpenLockFile declined a healthy directory whose master lock is held")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("QuickOpenLockFile waited for the master lock")
	}
}

// writeJournalOnly does the first half of allocating id in dir, as a
// writer stopped or killed between its journal write and its page write
// leaves it: the journal holds the new page, which the page does not
// reflect yet. Open redoes it; every reader reads through it.
func writeJournalOnly(t *testing.T, dir string, id uint32) {
	t.Helper()
	path := filepath.Join(dir, registryName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := parseRegistry(data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.updatedPage(id, true, v.maxSeq()+1)
	if err != nil {
		t.Fatal(err)
	}
	copy(data[journalOff:], journalRecord(id/bitsPerPage, p))
	if v, err := parseRegistry(data); err != nil || v.journal == nil {
		t.Fatalf("journal record not pending: %v", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// newLockDir makes a lock directory of capacity 8 in a fresh temporary
// directory and returns its path, with no Manager left open on it.
func newLockDir(t *testing.T, opts ...Option) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ld")
	m, err := Create(dir, 8, opts...)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	return dir
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func removeAll(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, perm); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// patchFile writes byte b at offset off of path, which it may extend.
func patchFile(t *testing.T, path string, off int, b byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{b}, int64(off)); err != nil {
		t.Fatal(err)
	}
}
