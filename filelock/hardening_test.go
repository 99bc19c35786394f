//go:build linux

package filelock

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/internal/childproc"
)

// Hardening tests: other users, descriptor leaks into exec'd children, and a
// small RLIMIT_NOFILE. (Symlinks, unsafe directories and modes are opening's
// subject, in open_linux_test.go; its umask child role is dispatched here.) Tests that need a
// second user create throwaway users when run as root and skip otherwise.
// Child processes are this test binary re-executed with
// -test.run=^TestHardeningChild$ in a role of namespace "hardening"
// (hardenChild).

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
	role := childproc.Role("hardening")
	if role == "" {
		t.Skip("child process entry point")
	}
	if role == "member" {
		var a memberArgs
		if err := childproc.Args(&a); err != nil {
			t.Fatal(err)
		}
		childproc.Reply(childMember(a))
		return
	}
	var a hardenArgs
	if err := childproc.Args(&a); err != nil {
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
	default:
		t.Fatalf("unknown role %q", role)
	}
	childproc.Reply(r)
}

// hardenChild describes a child of TestHardeningChild in role, run as cred
// if non-nil, from exe, or from the test binary if exe is "".
func hardenChild(role string, a any, cred *syscall.Credential, exe string) childproc.Spec {
	s := childproc.Spec{Role: "hardening/" + role, Args: a, Exe: exe, Run: "^TestHardeningChild$", Dir: "/"}
	if cred != nil {
		s.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return s
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
	cmd := childproc.Command(t, hardenChild(role, a, cred, exe))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v\n%s\n%s", role, err, out, stderr.Bytes())
	}
	var r hardenResult
	if err := childproc.Result(out, &r); err != nil {
		t.Fatalf("child %s printed no result: %s\n%s", role, out, stderr.Bytes())
	}
	return r
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
	u := childproc.NewUser(t)
	return tempUser{u.Name, u.UID, u.GID}
}

// publicBinary copies the test binary where every user can run it.
func publicBinary(t *testing.T) string {
	t.Helper()
	return childproc.PublicBinary(t, childproc.PublicDir(t), "filelock.test")
}

// publicDir makes a directory that every user can reach.
func publicDir(t *testing.T) string {
	t.Helper()
	return childproc.PublicDir(t)
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
	before := createAllocated(t, dir)
	reg := filepath.Join(dir, registryName)

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
	before = createAllocated(t, shared, WithSharedGroup(member.gid))
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
