//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/internal/childproc"
)

// Opening and creating lock directories: the constructors, the capacity
// range, the modes and owners of what they create, and the symlinks and
// unsafe directories they refuse. The Linux-only hardening checks of the
// same subject, which need package internals, are in open_linux_test.go.

func TestCreateExisting(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	mustAllocate(t, m)
	_, err := filelock.Create(m.Dir(), 20)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over an existing directory: %v, want fs.ErrExist", err)
	}
	wantUnchanged(t, "after a second Create", open(t, m.Dir()), 10, 0)
}

// wantUnchanged checks that m, on a directory that a second Create or
// OpenOrCreate met, still has the existing capacity and allocations.
func wantUnchanged(t *testing.T, what string, m *filelock.Manager, wantCapacity uint32, wantIDs ...uint32) {
	t.Helper()
	if got := capacity(t, m); got != wantCapacity {
		t.Errorf("%s: capacity %d, want the existing %d", what, got, wantCapacity)
	}
	if got := allocated(t, m); !slices.Equal(got, wantIDs) {
		t.Errorf("%s: allocated %v, want %v", what, got, wantIDs)
	}
}

func TestOpenMissing(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for _, dir := range []string{
		filepath.Join(tmp, "missing"),        // no directory at all
		filepath.Join(tmp, "missing", "sub"), // no parent either
		tmp,                                  // a directory, but no registry
	} {
		_, err := filelock.Open(dir)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%s) = %v, want fs.ErrNotExist", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created the directory it failed to open: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "registry")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created a registry: %v", err)
	}
}

func TestOpenOrCreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b", "locks")
	m, err := filelock.OpenOrCreate(dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mustAllocate(t, m)
	m2, err := filelock.OpenOrCreate(dir, 500)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	wantUnchanged(t, "OpenOrCreate on an existing directory", m2, 10, 0)
}

func TestCapacityRange(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for _, n := range []uint32{0, filelock.MaxLocks + 1, math.MaxUint32} {
		if m, err := filelock.Create(filepath.Join(tmp, strconv.Itoa(int(n))), n); err == nil {
			m.Close()
			t.Errorf("Create with capacity %d succeeded", n)
		}
	}
	for _, n := range []uint32{1, filelock.DefaultNumLocks, 32512, 32513, filelock.MaxLocks} {
		m, err := filelock.Create(filepath.Join(tmp, "ok"+strconv.Itoa(int(n))), n)
		if err != nil {
			t.Errorf("Create with capacity %d: %v", n, err)
			continue
		}
		if got := capacity(t, m); got != n {
			t.Errorf("capacity = %d, want %d", got, n)
		}
		if _, err := m.AllocateAndRetrieveLock(n - 1); err != nil {
			t.Errorf("capacity %d: allocating the last ID: %v", n, err)
		}
		if got := allocated(t, m); !slices.Equal(got, []uint32{n - 1}) {
			t.Errorf("capacity %d: allocated %v", n, got)
		}
		m.Close()
	}
	m := create(t, 5)
	for _, n := range []uint32{0, filelock.MaxLocks + 1} {
		if err := m.Resize(n); err == nil {
			t.Errorf("Resize(%d) succeeded", n)
		}
	}
}

// TestModes creates directories in children with different umasks and
// checks that the modes do not depend on it.
func TestModes(t *testing.T) {
	t.Parallel()
	gid := os.Getgid()
	for _, tc := range []struct {
		umask             string
		shared            bool
		dirMode, fileMode uint32
	}{
		{"0", false, 0o700, 0o600},
		{"022", false, 0o700, 0o600},
		{"077", false, 0o700, 0o600},
		{"0", true, 0o2770, 0o660},
		{"022", true, 0o2770, 0o660},
		{"077", true, 0o2770, 0o660},
	} {
		name := "umask" + tc.umask
		if tc.shared {
			name += "-shared"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "locks")
			env := []string{"DIR=" + dir, "UMASK=" + tc.umask}
			if tc.shared {
				env = append(env, "GID="+strconv.Itoa(gid))
			}
			mustWait(t, startChild(t, "modes", env...))
			check := func(rel string, want uint32) {
				t.Helper()
				var st syscall.Stat_t
				if err := syscall.Lstat(filepath.Join(dir, rel), &st); err != nil {
					t.Error(err)
					return
				}
				if got := uint32(st.Mode) & 0o7777; got != want {
					t.Errorf("%s: mode %#o, want %#o", rel, got, want)
				}
				if tc.shared && int(st.Gid) != gid {
					t.Errorf("%s: group %d, want %d", rel, st.Gid, gid)
				}
			}
			check(".", tc.dirMode)
			check("locks", tc.dirMode)
			check("registry", tc.fileMode)
			check("registry.lock", tc.fileMode)
			check("locks/2", tc.fileMode)
			check("locks/3", tc.fileMode)
			if _, err := os.Stat(filepath.Join(dir, "registry.tmp")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("registry.tmp left behind: %v", err)
			}
		})
	}
}

// TestRefuseForeignDirectory checks that a directory holding other files
// is not turned into a lock directory, and is left as it was.
func TestRefuseForeignDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func() (*filelock.Manager, error){
		"Create":       func() (*filelock.Manager, error) { return filelock.Create(dir, 8) },
		"OpenOrCreate": func() (*filelock.Manager, error) { return filelock.OpenOrCreate(dir, 8) },
	} {
		m, err := open()
		if err == nil {
			m.Close()
			t.Fatalf("%s made a lock directory of a directory holding notes.txt", name)
		}
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "not a lock directory") {
			t.Errorf("%s: error %v, want fs.ErrExist saying it is not a lock directory", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "registry")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a registry appeared: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "mine" {
		t.Errorf("notes.txt changed: %q, %v", b, err)
	}
}

// TestRecreateAfterMovingRegistryAside checks the documented way to start
// afresh in place: move the registry aside and create a new one. Managers
// still open on the directory notice the new registry.
func TestRecreateAfterMovingRegistryAside(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ld")
	old, err := filelock.Create(dir, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.AllocateLock(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "registry"), filepath.Join(dir, "registry.bak")); err != nil {
		t.Fatal(err)
	}
	m, err := filelock.Create(dir, 4)
	if err != nil {
		t.Fatalf("Create after moving the registry aside: %v", err)
	}
	defer m.Close()
	if c, err := old.Capacity(); err != nil || c != 4 {
		t.Errorf("the older Manager sees capacity %d, %v; want the new registry's 4", c, err)
	}
	if ids := allocated(t, old); len(ids) != 0 {
		t.Errorf("the older Manager sees %v allocated in the new registry, want none", ids)
	}
}

// TestOpenOrCreateRace starts many processes at once that each open or
// create the same directory and allocate a lock. None may fail, and none may
// reset the allocations of another.
func TestOpenOrCreateRace(t *testing.T) {
	t.Parallel()
	const children = 12
	for _, existing := range []bool{false, true} {
		name := "new"
		if existing {
			name = "existing"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "parent", "locks")
			var before []uint32
			if existing {
				m, err := filelock.Create(dir, 100)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range []uint32{0, 2, 5} {
					if _, err := m.AllocateAndRetrieveLock(id); err != nil {
						t.Fatal(err)
					}
				}
				m.Close()
				before = []uint32{0, 2, 5}
			}
			cs := make([]*childproc.Child, children)
			for i := range cs {
				cs[i] = startChild(t, "alloc", "DIR="+dir, "CAP=100")
			}
			for _, c := range cs { // release them together
				c.CloseStdin()
			}
			got := slices.Clone(before)
			for _, c := range cs {
				id, err := strconv.ParseUint(c.Next(childLine), 10, 32)
				if err != nil {
					t.Fatal(err)
				}
				mustWait(t, c)
				got = append(got, uint32(id))
			}
			slices.Sort(got)
			if len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Errorf("IDs allocated before and by the children are not distinct: %v", got)
			}
			m := open(t, dir)
			if all := allocated(t, m); !slices.Equal(all, got) {
				t.Errorf("registry holds %v; allocated before and by the children: %v", all, got)
			}
			if c := capacity(t, m); c != 100 {
				t.Errorf("capacity %d, want 100", c)
			}
		})
	}
}

func TestSymlinksRefused(t *testing.T) {
	t.Parallel()
	mustSymlink := func(t *testing.T, target, link string) {
		t.Helper()
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("lock file", func(t *testing.T) {
		t.Parallel()
		m := create(t, 10)
		target := filepath.Join(t.TempDir(), "target")
		mustSymlink(t, target, m.LockPath(4))
		l := mustRetrieve(t, m, 4)
		err := l.LockContext(t.Context())
		if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), m.LockPath(4)) {
			t.Errorf("LockContext on a symlinked lock file: %v; want an error naming the file as a symbolic link", err)
		}
		v := panicValue(l.Lock)
		if v == nil || !strings.Contains(fmtValue(v), "symbolic link") {
			t.Errorf("Lock on a symlinked lock file panicked with %v; want a symbolic-link error", v)
		}
		if v := panicValue(func() { l.TryLock() }); v == nil || !strings.Contains(fmtValue(v), "symbolic link") {
			t.Errorf("TryLock on a symlinked lock file panicked with %v; want a symbolic-link error", v)
		}
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the symlink's target was created: %v", err)
		}
		// A dangling-free variant: the target exists.
		os.WriteFile(target, nil, 0o600)
		if err := l.LockContext(t.Context()); err == nil {
			t.Error("LockContext followed a symlink to an existing file")
			l.Unlock()
		}
	})
	t.Run("registry", func(t *testing.T) {
		t.Parallel()
		m := create(t, 10)
		dir := m.Dir()
		m.Close()
		reg := filepath.Join(dir, "registry")
		moved := filepath.Join(t.TempDir(), "registry")
		if err := os.Rename(reg, moved); err != nil {
			t.Fatal(err)
		}
		mustSymlink(t, moved, reg)
		for name, fn := range map[string]func() (*filelock.Manager, error){
			"Open":         func() (*filelock.Manager, error) { return filelock.Open(dir) },
			"OpenOrCreate": func() (*filelock.Manager, error) { return filelock.OpenOrCreate(dir, 10) },
		} {
			m, err := fn()
			if err == nil {
				m.Close()
				t.Errorf("%s of a directory whose registry is a symlink succeeded", name)
			} else if !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("%s: %v; want a symbolic-link error", name, err)
			}
		}
		// Planted while a manager has the directory open.
		if err := os.Remove(reg); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(moved, reg); err != nil {
			t.Fatal(err)
		}
		m = open(t, dir)
		copyFile(t, reg, moved)
		if err := os.Remove(reg); err != nil {
			t.Fatal(err)
		}
		mustSymlink(t, moved, reg)
		if _, err := m.AllocateLock(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("AllocateLock with the registry replaced by a symlink: %v; want a symbolic-link error", err)
		}
	})
	t.Run("registry.lock", func(t *testing.T) {
		t.Parallel()
		m := create(t, 10)
		dir := m.Dir()
		m.Close()
		master := filepath.Join(dir, "registry.lock")
		os.Remove(master)
		mustSymlink(t, filepath.Join(t.TempDir(), "x"), master)
		if m, err := filelock.Open(dir); err == nil {
			m.Close()
			t.Error("Open with registry.lock a symlink succeeded")
		} else if !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("Open: %v; want a symbolic-link error", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		m := create(t, 10)
		m.Close()
		link := filepath.Join(t.TempDir(), "link")
		mustSymlink(t, m.Dir(), link)
		if m, err := filelock.Open(link); err == nil {
			m.Close()
			t.Error("Open of a symlinked directory succeeded")
		} else if !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("Open: %v; want a symbolic-link error", err)
		}
		// locks/ too.
		locks := filepath.Join(m.Dir(), "locks")
		moved := filepath.Join(t.TempDir(), "locks")
		if err := os.Rename(locks, moved); err != nil {
			t.Fatal(err)
		}
		mustSymlink(t, moved, locks)
		if m, err := filelock.Open(m.Dir()); err == nil {
			m.Close()
			t.Error("Open with a symlinked locks directory succeeded")
		} else if !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("Open: %v; want a symbolic-link error", err)
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestUnsafeDirRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sub  string // "" for the lock directory itself
		mode fs.FileMode
		want string
	}{
		{"", 0o770, "group-writable"},
		{"", 0o720, "group-writable"},
		{"", 0o707, "world-writable"},
		{"", 0o1777, "world-writable"},
		{"locks", 0o770, "group-writable"},
		{"locks", 0o703, "world-writable"},
	} {
		t.Run(filepath.Join("dir", tc.sub)+"-"+strconv.FormatUint(uint64(tc.mode), 8), func(t *testing.T) {
			t.Parallel()
			m := create(t, 10)
			m.Close()
			if err := os.Chmod(filepath.Join(m.Dir(), tc.sub), tc.mode); err != nil {
				t.Fatal(err)
			}
			for _, opts := range [][]filelock.Option{nil, {filelock.WithSharedGroup(os.Getgid() + 1)}} {
				m, err := filelock.Open(m.Dir(), opts...)
				if err == nil {
					m.Close()
					t.Fatalf("Open of a directory with mode %#o succeeded", tc.mode)
				}
				if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Open: %v; want fs.ErrPermission saying %q", err, tc.want)
				}
			}
			// The shared group allows a group-writable directory.
			if tc.want == "group-writable" {
				m, err := filelock.Open(m.Dir(), filelock.WithSharedGroup(os.Getgid()))
				if err != nil {
					t.Fatalf("Open with the shared group of a group-writable directory: %v", err)
				}
				m.Close()
			}
		})
	}
}
