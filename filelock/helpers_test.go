//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/internal/childproc"
	"github.com/lockdir/lockdir/lock"
)

// Child processes re-execute the test binary (childproc.Command) in a role
// of namespace "filelock"; TestMain hands them to runChild before any test
// runs.

// runChild runs the child role this process was started in, if any, and
// reports whether it did. A failing child exits with status 2 and says why
// on stderr.
func runChild() bool {
	role := childproc.Role("filelock")
	if role == "" {
		return false
	}
	var err error
	switch role {
	case "alloc":
		err = childAlloc()
	case "hold":
		err = childHold()
	case "modes":
		err = childModes()
	case "rw":
		err = childRW()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "child %s (pid %d): %v\n", role, os.Getpid(), err)
		os.Exit(2)
	}
	return true
}

func envUint32(name string) (uint32, error) {
	n, err := strconv.ParseUint(os.Getenv(name), 10, 32)
	return uint32(n), err
}

// childAlloc waits for its stdin to close, so that all children start at
// once, then opens or creates $DIR with $CAP locks, allocates one and
// prints its ID.
func childAlloc() error {
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return err
	}
	capacity, err := envUint32("CAP")
	if err != nil {
		return err
	}
	m, err := filelock.OpenOrCreate(os.Getenv("DIR"), capacity)
	if err != nil {
		return err
	}
	l, err := m.AllocateLock()
	if err != nil {
		return err
	}
	fmt.Println(l.ID())
	return m.Close()
}

// childHold locks the IDs in $IDS (comma-separated) of $DIR, prints
// "locked", and holds them until its stdin closes.
func childHold() error {
	m, err := filelock.Open(os.Getenv("DIR"))
	if err != nil {
		return err
	}
	var ls []lock.Locker
	for f := range strings.SplitSeq(os.Getenv("IDS"), ",") {
		id, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return err
		}
		l, err := m.RetrieveLock(uint32(id))
		if err != nil {
			return err
		}
		l.Lock()
		ls = append(ls, l)
	}
	fmt.Println("locked")
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return err
	}
	for _, l := range ls {
		l.Unlock()
	}
	return m.Close()
}

// childModes sets the umask to $UMASK (octal), creates $DIR (shared with
// group $GID if set), creates lock files 2 and 3 and resizes the registry,
// so that the parent can check every file's mode.
func childModes() error {
	umask, err := strconv.ParseUint(os.Getenv("UMASK"), 8, 32)
	if err != nil {
		return err
	}
	syscall.Umask(int(umask))
	var opts []filelock.Option
	if g := os.Getenv("GID"); g != "" {
		gid, err := strconv.Atoi(g)
		if err != nil {
			return err
		}
		opts = append(opts, filelock.WithSharedGroup(gid))
	}
	m, err := filelock.Create(os.Getenv("DIR"), 16, opts...)
	if err != nil {
		return err
	}
	for _, id := range []uint32{2, 3} {
		l, err := m.RetrieveLock(id)
		if err != nil {
			return err
		}
		l.Lock()
		l.Unlock()
	}
	if _, err := m.AllocateLock(); err != nil {
		return err
	}
	if err := m.Resize(32); err != nil {
		return err
	}
	return m.Close()
}

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *childproc.SyncBuffer
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

// startChild starts the test binary in the given role with extra
// environment variables. The child is killed at the end of the test if it
// is still running.
func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := childproc.Command(t, childproc.Spec{Role: "filelock/" + role, Env: env})
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Our own pipe rather than StdoutPipe, which Wait closes: the child's
	// output stays readable after it exits.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(r), stderr: &childproc.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		defer r.Close()
		select {
		case <-c.done:
		default:
			cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// readLine returns the next line the child prints, failing the test if
// the child exits first or takes longer than 30 seconds.
func (c *child) readLine(t *testing.T) string {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.out.ReadString('\n')
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("child %d: reading its output: %v; stderr:\n%s", c.cmd.Process.Pid, r.err, c.stderr)
		}
		return strings.TrimSpace(r.s)
	case <-time.After(30 * time.Second):
		t.Fatalf("child %d: no output after 30s; stderr:\n%s", c.cmd.Process.Pid, c.stderr)
	}
	return ""
}

// wait waits for the child to exit and fails the test unless it succeeded.
func (c *child) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("child %d still running after 60s", c.cmd.Process.Pid)
	}
	if c.err != nil {
		var ee *exec.ExitError
		if errors.As(c.err, &ee) {
			t.Fatalf("child %d: %v; stderr:\n%s", c.cmd.Process.Pid, c.err, c.stderr)
		}
		t.Fatalf("child %d: %v", c.cmd.Process.Pid, c.err)
	}
}

// holdInChild starts a child that locks ids in dir and returns once it
// holds them.
func holdInChild(t *testing.T, dir string, ids ...uint32) *child {
	t.Helper()
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	c := startChild(t, "hold", "DIR="+dir, "IDS="+strings.Join(s, ","))
	if line := c.readLine(t); line != "locked" {
		t.Fatalf("child printed %q, want \"locked\"", line)
	}
	return c
}

// create makes a lock directory with the given capacity in a fresh
// temporary directory and closes the manager at the end of the test.
func create(t *testing.T, capacity uint32, opts ...filelock.Option) *filelock.Manager {
	t.Helper()
	m, err := filelock.Create(filepath.Join(t.TempDir(), "locks"), capacity, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// tmpfsDir returns a fresh directory on tmpfs (/dev/shm), where lock
// directories normally live and creating files is cheap, or t.TempDir if
// there is none. It is removed at the end of the test.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	var st syscall.Statfs_t
	const tmpfsMagic = 0x01021994
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != tmpfsMagic {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "lockdir-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// open opens dir and closes the manager at the end of the test.
func open(t *testing.T, dir string, opts ...filelock.Option) *filelock.Manager {
	t.Helper()
	m, err := filelock.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mustAllocate(t *testing.T, m *filelock.Manager) *filelock.Locker {
	t.Helper()
	l, err := m.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustRetrieve(t *testing.T, m *filelock.Manager, id uint32) *filelock.Locker {
	t.Helper()
	l, err := m.Retrieve(id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func allocated(t *testing.T, m *filelock.Manager) []uint32 {
	t.Helper()
	ids, err := m.Allocated()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func capacity(t *testing.T, m *filelock.Manager) uint32 {
	t.Helper()
	n, err := m.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// heldElsewhere reports whether lock id of dir is held, by trying it from
// a fresh Manager.
func heldElsewhere(t *testing.T, dir string, id uint32) bool {
	t.Helper()
	m, err := filelock.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l := mustRetrieve(t, m, id)
	if l.TryLock() {
		l.Unlock()
		return false
	}
	return true
}

// panicValue runs fn and returns what it panicked with, or nil.
func panicValue(fn func()) (v any) {
	defer func() { v = recover() }()
	fn()
	return nil
}

// openFDs returns the targets of this process's open descriptors.
func openFDs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var targets []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the descriptor ReadDir itself used
		}
		targets = append(targets, target)
	}
	return targets
}

// fdsUnder counts this process's descriptors open on files under dir.
func fdsUnder(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, target := range openFDs(t) {
		if strings.HasPrefix(target, dir+"/") || target == dir {
			n++
		}
	}
	return n
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
