//go:build linux

package filelock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Opening and creating lock directories, from inside the package, on Linux:
// planted symlinks, unsafe directories, and the modes of what is created
// under every umask. The portable checks are in open_test.go.

// victim is a file that a planted symlink points at, like /etc/passwd in
// a shared /tmp.
type victim struct {
	path string
	data []byte
	fi   os.FileInfo
}

func newVictim(t *testing.T, data []byte) victim {
	shared := t.TempDir()
	p := filepath.Join(shared, "passwd")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	fi, _ := os.Stat(p)
	return victim{p, data, fi}
}

func (v victim) check(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(v.path)
	if err != nil || !bytes.Equal(b, v.data) {
		t.Errorf("symlink target %s changed: %q, %v", v.path, b, err)
	}
	fi, err := os.Stat(v.path)
	if err != nil || fi.Mode() != v.fi.Mode() || !fi.ModTime().Equal(v.fi.ModTime()) || fi.Size() != v.fi.Size() {
		t.Errorf("symlink target %s: mode/mtime/size changed: %v -> %v", v.path, v.fi, fi)
	}
	if held, _ := os.ReadFile("/proc/locks"); v.fi != nil {
		ino := v.fi.Sys().(*syscall.Stat_t).Ino
		if bytes.Contains(held, []byte(":"+strconv.FormatUint(ino, 10)+" ")) {
			t.Errorf("symlink target %s is locked", v.path)
		}
	}
}

func mustPanic(t *testing.T, what, want string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("%s did not panic", what)
			return
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, want) {
			t.Errorf("%s panicked with %q, want it to say %q", what, msg, want)
		}
	}()
	fn()
}

func TestHardeningSymlinkLockFile(t *testing.T) {
	v := newVictim(t, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	dir := filepath.Join(t.TempDir(), "locks")
	m, err := Create(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.Symlink(v.path, m.LockPath(5)); err != nil {
		t.Fatal(err)
	}
	fl, _ := m.Retrieve(5)
	mustPanic(t, "Lock on a symlinked lock file", "symbolic link", fl.Lock)
	mustPanic(t, "TryLock on a symlinked lock file", "symbolic link", func() { fl.TryLock() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := fl.LockContext(ctx); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("LockContext on a symlinked lock file: %v", err)
	}
	// A symlink to a directory or a FIFO in place of a lock file.
	if err := os.Symlink(filepath.Dir(v.path), m.LockPath(6)); err != nil {
		t.Fatal(err)
	}
	l6, _ := m.RetrieveLock(6)
	mustPanic(t, "Lock on a symlink to a directory", "symbolic link", l6.Lock)
	// In a shared directory a group member can plant a FIFO, on which
	// flock(1) would block forever; filelock refuses it. (In a private
	// directory only its owner can plant anything, so filelock does not
	// spend an fstat per lock file on it: see docs/design.md.)
	sm, err := Create(filepath.Join(t.TempDir(), "shared"), 100, WithSharedGroup(os.Getgid()))
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	if err := syscall.Mkfifo(sm.LockPath(7), 0o660); err != nil {
		t.Fatal(err)
	}
	l7, _ := sm.RetrieveLock(7)
	mustPanic(t, "Lock on a FIFO in a shared directory", "not a regular file", l7.Lock)
	// Other locks still work.
	l8, _ := m.RetrieveLock(8)
	l8.Lock()
	l8.Unlock()
	v.check(t)
}

// createAllocated creates a lock directory of 100 locks at dir, allocates
// ID 0 and closes it, and returns the registry's bytes.
func createAllocated(t *testing.T, dir string, opts ...Option) []byte {
	t.Helper()
	m, err := Create(dir, 100, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AllocateLock(); err != nil {
		m.Close()
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, registryName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHardeningSymlinkRegistry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "locks")
	valid := createAllocated(t, dir)
	// The target is a valid registry, so following the link would work.
	v := newVictim(t, valid)

	plant := func(name string) func() {
		p := filepath.Join(dir, name)
		saved := p + ".saved"
		if err := os.Rename(p, saved); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(v.path, p); err != nil {
			t.Fatal(err)
		}
		return func() { os.Remove(p); os.Rename(saved, p) }
	}
	for _, name := range []string{registryName, masterName} {
		undo := plant(name)
		for _, open := range []func() (*Manager, error){
			func() (*Manager, error) { return Open(dir) },
			func() (*Manager, error) { return OpenOrCreate(dir, 100) },
		} {
			if m, err := open(); err == nil {
				m.Close()
				t.Errorf("opened a lock directory whose %s is a symlink", name)
			} else if !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("%s is a symlink: error %q does not say so", name, err)
			}
		}
		undo()
	}

	// Planted under an open manager: the next operation refuses it.
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	undo := plant(registryName)
	if _, err := m.AllocateLock(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("AllocateLock with the registry replaced by a symlink: %v", err)
	}
	undo()

	// A symlink planted as the temporary file of a replacement is removed,
	// not followed.
	if err := os.Symlink(v.path, filepath.Join(dir, tmpName)); err != nil {
		t.Fatal(err)
	}
	if err := m.Resize(200); err != nil {
		t.Errorf("Resize with a planted %s symlink: %v", tmpName, err)
	}
	if c, _ := m.Capacity(); c != 200 {
		t.Errorf("capacity %d after Resize(200)", c)
	}

	// The directory itself, and its locks subdirectory.
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(dir, link)
	if m, err := Open(link); err == nil {
		m.Close()
		t.Error("opened a lock directory through a symlink")
	} else if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("lock directory is a symlink: error %q does not say so", err)
	}
	locks := filepath.Join(dir, locksName)
	os.Rename(locks, locks+".saved")
	os.Symlink(filepath.Dir(v.path), locks)
	if m, err := Open(dir); err == nil {
		m.Close()
		t.Error("opened a lock directory whose locks/ is a symlink")
	}
	v.check(t)
}

func TestHardeningUnsafeDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "locks")
	m, err := Create(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	expect := func(name string, opts []Option, want string) {
		t.Helper()
		m, err := Open(dir, opts...)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case want == "" && err == nil:
			m.Close()
		case err == nil:
			m.Close()
			t.Errorf("%s: opened", name)
		case !strings.Contains(err.Error(), want) || !errors.Is(err, fs.ErrPermission):
			t.Errorf("%s: error %q does not say %q (or match fs.ErrPermission)", name, err, want)
		}
	}
	gid := os.Getgid()
	for _, c := range []struct {
		mode uint32
		opts []Option
		want string
	}{
		{0o755, nil, ""},
		{0o770, nil, "group-writable"},
		{0o770, nil, "WithSharedGroup"},
		{0o777, nil, "world-writable"},
		{0o1777, nil, "world-writable"},
		{0o2770, []Option{WithSharedGroup(gid + 1)}, "group-writable"},
		{0o2770, []Option{WithSharedGroup(gid)}, ""},
		{0o2777, []Option{WithSharedGroup(gid)}, "world-writable"},
	} {
		if err := syscall.Chmod(dir, c.mode); err != nil {
			t.Fatal(err)
		}
		expect(fmt.Sprintf("directory mode %#o", c.mode), c.opts, c.want)
	}
	// Make it private again, files included.
	os.Chmod(dir, 0o700)
	for _, name := range []string{registryName, masterName} {
		os.Chmod(filepath.Join(dir, name), 0o600)
	}
	expect("private again", nil, "")
	reg := filepath.Join(dir, registryName)
	os.Chmod(reg, 0o666)
	expect("registry mode 0666", nil, "world-writable")
	os.Chmod(reg, 0o600)

	if os.Geteuid() != 0 {
		t.Skip("needs root to give the directory to another user")
	}
	os.Chown(dir, 54321, -1)
	expect("directory owned by uid 54321", nil, "owned by uid 54321")
	os.Chown(dir, 0, -1)
	os.Chown(reg, 54321, -1)
	expect("registry owned by uid 54321", nil, "owned by uid 54321")
}

func sharedGID() int {
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup("users"); err == nil {
			gid, _ := strconv.Atoi(g.Gid)
			return gid
		}
	}
	return os.Getgid()
}

func checkMode(t *testing.T, path string, wantMode uint32, wantGID int) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Error(err)
		return
	}
	if got := st.Mode & 0o7777; got != wantMode {
		t.Errorf("%s: mode %#o, want %#o", path, got, wantMode)
	}
	if wantGID >= 0 && int(st.Gid) != wantGID {
		t.Errorf("%s: group %d, want %d", path, st.Gid, wantGID)
	}
}

func childUmask(a hardenArgs) hardenResult {
	syscall.Umask(a.Umask)
	var opts []Option
	if a.GID >= 0 {
		opts = append(opts, WithSharedGroup(a.GID))
	}
	m, err := Create(a.Dir, 100, opts...)
	if err != nil {
		return hardenResult{Err: err.Error()}
	}
	defer m.Close()
	l, err := m.AllocateLock()
	if err == nil {
		l.Lock()
		l.Unlock()
		err = m.Resize(200)
	}
	return hardenResult{Err: errString(err)}
}

func TestHardeningModesUnderUmask(t *testing.T) {
	gid := sharedGID()
	for _, shared := range []bool{false, true} {
		for _, umask := range []int{0, 0o077, 0o022} {
			t.Run(fmt.Sprintf("shared=%v/umask=%#o", shared, umask), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "locks")
				a := hardenArgs{Dir: dir, Umask: umask, GID: -1}
				dirMode, fileMode, wantGID := uint32(0o700), uint32(0o600), -1
				if shared {
					a.GID, dirMode, fileMode, wantGID = gid, 0o2770, 0o660, gid
				}
				if r := runChild(t, "umask", a, nil, ""); r.Err != "" {
					t.Fatal(r.Err)
				}
				checkMode(t, dir, dirMode, wantGID)
				checkMode(t, filepath.Join(dir, locksName), dirMode, wantGID)
				checkMode(t, filepath.Join(dir, registryName), fileMode, wantGID)
				checkMode(t, filepath.Join(dir, masterName), fileMode, wantGID)
				checkMode(t, filepath.Join(dir, locksName, "0"), fileMode, wantGID)
			})
		}
	}
}
