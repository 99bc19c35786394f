//go:build linux

package filelock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hardening tests: symlinks, ownership and modes, other users, descriptor
// leaks into exec'd children, and a small RLIMIT_NOFILE. Tests that need a
// second user create throwaway users when run as root and skip otherwise.
// Child processes are this test binary re-executed with
// -test.run=^TestHardeningChild$ and hardenChildEnv naming the role.

const hardenChildEnv = "LOCKDIR_HARDEN_CHILD"

type hardenArgs struct {
	Dir     string
	Umask   int
	GID     int // WithSharedGroup, or -1
	MaxOpen int // WithMaxOpenFiles, or 0 for the default
	NoFile  uint64
}

type hardenResult struct {
	Err     string   `json:",omitempty"` // the Open or operation error
	RawErr  string   `json:",omitempty"` // writing the registry directly
	Locked  int      `json:",omitempty"` // IDs locked and unlocked
	Held    int      `json:",omitempty"` // locks held at once before TryLock said no
	Waited  bool     `json:",omitempty"` // a Lock beyond the limit waited, then succeeded
	FDs     []string `json:",omitempty"` // /proc/self/fd targets
	ReadErr string   `json:",omitempty"`
}

// TestHardeningChild is the child side; it does nothing in a normal run.
func TestHardeningChild(t *testing.T) {
	role := os.Getenv(hardenChildEnv)
	if role == "" {
		t.Skip("child process entry point")
	}
	var a hardenArgs
	if err := json.Unmarshal([]byte(os.Getenv(hardenChildEnv+"_ARGS")), &a); err != nil {
		t.Fatal(err)
	}
	var r hardenResult
	switch role {
	case "umask":
		r = childUmask(a)
	case "intruder":
		r = childIntruder(a)
	case "nofile":
		r = childNoFile(a)
	case "twomanagers":
		r = childTwoManagers(a)
	case "listfd":
		r = childListFD()
	case "member":
		var a memberArgs
		if err := json.Unmarshal([]byte(os.Getenv(hardenChildEnv+"_ARGS")), &a); err != nil {
			t.Fatal(err)
		}
		json.NewEncoder(os.Stdout).Encode(childMember(a))
		return
	default:
		t.Fatalf("unknown role %q", role)
	}
	json.NewEncoder(os.Stdout).Encode(r)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// runChild runs a child role, as cred if non-nil, and decodes its result.
func runChild(t *testing.T, role string, a hardenArgs, cred *syscall.Credential, exe string) hardenResult {
	t.Helper()
	if exe == "" {
		exe = os.Args[0]
	}
	args, _ := json.Marshal(a)
	cmd := exec.Command(exe, "-test.run=^TestHardeningChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), hardenChildEnv+"="+role, hardenChildEnv+"_ARGS="+string(args))
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v\n%s\n%s", role, err, out, stderr.Bytes())
	}
	// The result is the line that parses; go test adds PASS and the like.
	for _, line := range bytes.Split(out, []byte("\n")) {
		var r hardenResult
		if bytes.HasPrefix(line, []byte("{")) && json.Unmarshal(line, &r) == nil {
			return r
		}
	}
	t.Fatalf("child %s printed no result: %s\n%s", role, out, stderr.Bytes())
	return hardenResult{}
}

// --- symlinks ---

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

func TestHardeningSymlinkRegistry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "locks")
	m, err := Create(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	m.AllocateLock()
	m.Close()
	reg := filepath.Join(dir, registryName)
	valid, _ := os.ReadFile(reg)
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
	m, err = Open(dir)
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

// --- ownership and modes ---

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

// --- a second user ---

type tempUser struct {
	name     string
	uid, gid int
}

func (u tempUser) cred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}
}

// newUser creates a throwaway user (with a group of its own), removed at
// the end of the test.
func newUser(t *testing.T) tempUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a throwaway second user (useradd)")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("needs useradd to create a throwaway second user")
	}
	name := fmt.Sprintf("ldt%d%d", os.Getpid()%100000, time.Now().UnixNano()%1000)
	if out, err := exec.Command("useradd", "-M", "-U", "-s", "/usr/sbin/nologin", "-d", "/nonexistent", name).CombinedOutput(); err != nil {
		t.Skipf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return tempUser{name, uid, gid}
}

// publicBinary copies the test binary where another user can run it.
func publicBinary(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "lockdir-hardening-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755)
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(d, "filelock.test")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// publicDir makes a directory that every user can reach.
func publicDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "lockdir-hardening-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755)
	return d
}

// childIntruder tries to allocate and free in a.Dir, through the API and
// by writing the registry directly.
func childIntruder(a hardenArgs) hardenResult {
	var r hardenResult
	var opts []Option
	if a.GID >= 0 {
		opts = append(opts, WithSharedGroup(a.GID))
	}
	m, err := Open(a.Dir, opts...)
	if err == nil {
		var l interface{ Free() error }
		if l, err = m.AllocateLock(); err == nil {
			err = l.Free()
			if err == nil {
				var l0 interface{ Free() error }
				if l0, err = m.RetrieveLock(0); err == nil {
					err = l0.Free()
				}
			}
		}
		m.Close()
		if err == nil {
			err = errors.New("allocated and freed")
		}
	}
	r.Err = errString(err)
	f, err := os.OpenFile(filepath.Join(a.Dir, registryName), os.O_RDWR, 0)
	if err == nil {
		_, err = f.WriteAt(make([]byte, 4096), pagesOff)
		f.Close()
		if err == nil {
			err = errors.New("wrote the registry")
		}
	}
	r.RawErr = errString(err)
	return r
}

func TestHardeningSecondUser(t *testing.T) {
	intruder := newUser(t)
	member := newUser(t)
	exe := publicBinary(t)
	base := publicDir(t)

	// A private directory of root's, with ID 0 allocated.
	dir := filepath.Join(base, "private")
	m, err := Create(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	m.AllocateLock()
	m.Close()
	reg := filepath.Join(dir, registryName)
	before, _ := os.ReadFile(reg)

	r := runChild(t, "intruder", hardenArgs{Dir: dir, GID: -1}, intruder.cred(), exe)
	t.Logf("private 0700 directory: intruder's Open: %s; raw write: %s", r.Err, r.RawErr)
	if !strings.Contains(r.Err, "permission denied") || !strings.Contains(r.RawErr, "permission denied") {
		t.Errorf("intruder in a 0700 directory: %+v", r)
	}

	// Even readable, it is refused because it is not theirs, and the
	// registry cannot be written.
	os.Chmod(dir, 0o755)
	os.Chmod(reg, 0o644)
	os.Chmod(filepath.Join(dir, masterName), 0o644)
	r = runChild(t, "intruder", hardenArgs{Dir: dir, GID: -1}, intruder.cred(), exe)
	t.Logf("readable directory: intruder's Open: %s; raw write: %s", r.Err, r.RawErr)
	if !strings.Contains(r.Err, "owned by uid 0") || !strings.Contains(r.RawErr, "permission denied") {
		t.Errorf("intruder in a readable directory: %+v", r)
	}
	// Even claiming a shared group it is not in.
	r = runChild(t, "intruder", hardenArgs{Dir: dir, GID: intruder.gid}, intruder.cred(), exe)
	if !strings.Contains(r.Err, "owned by uid 0") {
		t.Errorf("intruder claiming its own group: %+v", r)
	}
	if after, _ := os.ReadFile(reg); !bytes.Equal(before, after) {
		t.Error("the registry changed")
	}

	// A directory shared with member's group: member may allocate and
	// free; the intruder, not in the group, may not.
	shared := filepath.Join(base, "shared")
	if m, err = Create(shared, 100, WithSharedGroup(member.gid)); err != nil {
		t.Fatal(err)
	}
	m.AllocateLock()
	m.Close()
	before, _ = os.ReadFile(filepath.Join(shared, registryName))
	r = runChild(t, "intruder", hardenArgs{Dir: shared, GID: intruder.gid}, intruder.cred(), exe)
	t.Logf("shared directory: intruder's Open: %s; raw write: %s", r.Err, r.RawErr)
	if !strings.Contains(r.Err, "permission denied") || !strings.Contains(r.RawErr, "permission denied") {
		t.Errorf("intruder in another group's directory: %+v", r)
	}
	if after, _ := os.ReadFile(filepath.Join(shared, registryName)); !bytes.Equal(before, after) {
		t.Error("the shared registry changed")
	}
	r = runChild(t, "intruder", hardenArgs{Dir: shared, GID: member.gid}, member.cred(), exe)
	if r.Err != "allocated and freed" {
		t.Errorf("group member in the shared directory: %+v", r)
	}
}

// --- descriptors ---

func childListFD() hardenResult {
	var r hardenResult
	ents, err := os.ReadDir("/proc/self/fd")
	r.ReadErr = errString(err)
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil {
			r.FDs = append(r.FDs, e.Name()+" -> "+target)
		}
	}
	return r
}

func TestHardeningNoFDLeakIntoExec(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "locks")
	m, err := Create(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Hold some locks, leave others cached, and map the registry.
	for id := range uint32(10) {
		l, _ := m.RetrieveLock(id)
		l.Lock()
		if id%2 == 0 {
			defer l.Unlock()
		} else {
			l.Unlock()
		}
	}
	m.AllocateLock()
	r := runChild(t, "listfd", hardenArgs{}, nil, "")
	if r.ReadErr != "" || len(r.FDs) == 0 {
		t.Fatalf("child listed no descriptors: %+v", r)
	}
	for _, fd := range r.FDs {
		if strings.Contains(fd, dir) {
			t.Errorf("exec'd child inherited %s", fd)
		}
	}
	t.Logf("child's descriptors: %v", r.FDs)
}

func childNoFile(a hardenArgs) hardenResult {
	var r hardenResult
	lim := syscall.Rlimit{Cur: a.NoFile, Max: a.NoFile}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		r.Err = err.Error()
		return r
	}
	var opts []Option
	if a.MaxOpen > 0 {
		opts = append(opts, WithMaxOpenFiles(a.MaxOpen))
	}
	m, err := Create(a.Dir, 20000, opts...)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer m.Close()
	defer func() {
		if p := recover(); p != nil {
			r.Err = fmt.Sprint("panic: ", p)
		}
	}()
	for id := range uint32(10000) {
		l, err := m.RetrieveLock(id)
		if err != nil {
			r.Err = err.Error()
			return r
		}
		l.Lock()
		l.Unlock()
		r.Locked++
	}
	// Hold locks until TryLock reports no descriptor is left...
	var held []*Locker
	for id := uint32(10000); id < 10200; id++ {
		l, _ := m.Retrieve(id)
		if !l.TryLock() {
			break
		}
		held = append(held, l)
	}
	r.Held = len(held)
	// ... then Lock one more: it must wait, not fail, and succeed once a
	// held lock is released.
	l, _ := m.RetrieveLock(10500)
	got := make(chan any, 1)
	go func() {
		defer func() { got <- recover() }()
		l.Lock()
	}()
	select {
	case p := <-got:
		r.Err = fmt.Sprint("Lock beyond the descriptor limit did not wait: ", p)
		return r
	case <-time.After(200 * time.Millisecond):
	}
	held[0].Unlock()
	select {
	case p := <-got:
		if p != nil {
			r.Err = fmt.Sprint("Lock beyond the descriptor limit: ", p)
			return r
		}
		r.Waited = true
		l.Unlock()
	case <-time.After(5 * time.Second):
		r.Err = "Lock beyond the descriptor limit still waiting 5s after a release"
	}
	for _, h := range held[1:] {
		h.Unlock()
	}
	return r
}

func TestHardeningLowNoFile(t *testing.T) {
	for _, maxOpen := range []int{0, 16} {
		t.Run(fmt.Sprintf("WithMaxOpenFiles=%d", maxOpen), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "locks")
			start := time.Now()
			r := runChild(t, "nofile", hardenArgs{Dir: dir, MaxOpen: maxOpen, NoFile: 64}, nil, "")
			if r.Err != "" {
				t.Fatal(r.Err)
			}
			if r.Locked != 10000 || !r.Waited || r.Held < 32 {
				t.Errorf("RLIMIT_NOFILE 64: %+v", r)
			}
			t.Logf("FIGURE %s: RLIMIT_NOFILE 64: locked and unlocked %d IDs, held %d at once before TryLock said no, one more Lock waited for a release; %v",
				t.Name(), r.Locked, r.Held, time.Since(start).Round(time.Millisecond))
		})
	}
}
