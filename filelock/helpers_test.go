//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
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

// childRW opens $DIR and obeys the commands on its standard input, one a
// line, for lock $ID, answering each on standard output once done:
//
//	ex, sh     Lock, RLock                     -> "locked"
//	un, run    Unlock, RUnlock                 -> "unlocked"
//	rawex      flock(LOCK_EX) on a descriptor of its own for LockPath
//	           (a process that is not lockdir) -> "locked"
//	rawun      flock(LOCK_UN) on it            -> the wall-clock time in
//	           nanoseconds read just before the call
//
// It prints "ready" first and exits at the end of its input.
func childRW() error {
	m, err := filelock.Open(os.Getenv("DIR"))
	if err != nil {
		return err
	}
	defer m.Close()
	id, err := envUint32("ID")
	if err != nil {
		return err
	}
	l, err := m.Retrieve(id)
	if err != nil {
		return err
	}
	raw := -1
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch cmd := in.Text(); cmd {
		case "ex":
			l.Lock()
			fmt.Println("locked")
		case "sh":
			l.RLock()
			fmt.Println("locked")
		case "un":
			l.Unlock()
			fmt.Println("unlocked")
		case "run":
			l.RUnlock()
			fmt.Println("unlocked")
		case "rawex":
			if raw < 0 {
				if raw, err = syscall.Open(m.LockPath(id), syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err != nil {
					return err
				}
			}
			if err := syscall.Flock(raw, syscall.LOCK_EX); err != nil {
				return err
			}
			fmt.Println("locked")
		case "rawun":
			t0 := time.Now().UnixNano()
			if err := syscall.Flock(raw, syscall.LOCK_UN); err != nil {
				return err
			}
			fmt.Println(t0)
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	return in.Err()
}

// Time given to a child to print its next line and to exit: more than
// the in-process patience, since a child must first start.
const (
	childLine = 30 * time.Second
	childExit = 60 * time.Second
)

// startChild starts the test binary in the given role with extra
// environment variables. The child is killed at the end of the test if it
// is still running.
func startChild(t *testing.T, role string, env ...string) *childproc.Child {
	t.Helper()
	return childproc.Start(t, childproc.Spec{Role: "filelock/" + role, Env: env})
}

// mustWait waits for c to exit, as c.Wait does, and stops the test unless
// it exited with status 0: for the call sites whose next checks read what
// the child made (its files, its allocations), which a failed child leaves
// half made. Where what follows holds whatever the child's status, since
// the kernel releases its locks at exit either way, the tests call c.Wait,
// which reports the failure and goes on. Like every Child method it is
// called from the test's goroutine.
func mustWait(t testing.TB, c *childproc.Child) {
	t.Helper()
	if !c.Wait(childExit) {
		t.FailNow()
	}
}

// holdInChild starts a child that locks ids in dir and returns once it
// holds them.
func holdInChild(t *testing.T, dir string, ids ...uint32) *childproc.Child {
	t.Helper()
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	c := startChild(t, "hold", "DIR="+dir, "IDS="+strings.Join(s, ","))
	c.Expect("locked", childLine)
	return c
}

// startRW starts a child in the role rw on lock id of dir and waits for it
// to be ready.
func startRW(t *testing.T, dir string, id uint32) *childproc.Child {
	t.Helper()
	c := startChild(t, "rw", "DIR="+dir, "ID="+strconv.FormatUint(uint64(id), 10))
	c.Expect("ready", patience)
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
	return !canLock(l)
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

// TestMustWait checks that mustWait stops the test when a child exits
// with a status other than 0, having reported why, and returns when it
// exits with 0.
func TestMustWait(t *testing.T) {
	t.Parallel()
	r := childproc.NewRecorder(t)
	for _, tc := range []struct {
		role string
		stop bool
	}{
		{"nosuchrole", true}, // runChild exits with status 2
		{"alloc", false},     // allocates in a directory it creates
	} {
		dir := filepath.Join(t.TempDir(), "locks")
		c := childproc.Start(r, childproc.Spec{Role: "filelock/" + tc.role, Env: []string{"DIR=" + dir, "CAP=4"}})
		fails, returned := r.Run(func() { mustWait(r, c) })
		if returned == tc.stop {
			t.Errorf("role %s: mustWait returned: %v, want %v (failures %q)", tc.role, returned, !tc.stop, fails)
		}
		if tc.stop && (len(fails) == 0 || !strings.Contains(fails[0], `unknown role "nosuchrole"`)) {
			t.Errorf("role %s: mustWait reported %q, want the child's stderr", tc.role, fails)
		}
	}
}
