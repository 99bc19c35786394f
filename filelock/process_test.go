//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

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
			cs := make([]*child, children)
			for i := range cs {
				cs[i] = startChild(t, "alloc", "DIR="+dir, "CAP=100")
			}
			for _, c := range cs { // release them together
				c.stdin.Close()
			}
			got := slices.Clone(before)
			for _, c := range cs {
				id, err := strconv.ParseUint(c.readLine(t), 10, 32)
				if err != nil {
					t.Fatal(err)
				}
				c.wait(t)
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

// TestHolderKilled kills a child holding a lock with SIGKILL; a Lock waiting
// for it gets it at once.
func TestHolderKilled(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	c := holdInChild(t, m.Dir(), 7)
	l := mustRetrieve(t, m, 7)
	if l.TryLock() {
		t.Fatal("TryLock succeeded while a child holds the lock")
	}
	locked := make(chan time.Time, 1)
	go func() {
		l.Lock()
		locked <- time.Now()
	}()
	time.Sleep(20 * time.Millisecond) // let Lock block in flock(2)
	killed := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-locked:
		t.Logf("Lock returned %v after SIGKILL of the holder", at.Sub(killed))
	case <-time.After(10 * time.Second):
		t.Fatal("Lock did not return 10s after the holder was killed")
	}
	l.Unlock()
}

// TestCloexec checks that no descriptor of the lock directory leaks into
// an exec'd child while locks are held and the registry is mapped.
func TestCloexec(t *testing.T) {
	// Not parallel: the control descriptor below would leak into the
	// children of other tests.
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd")
	}
	m := create(t, 10)
	l := mustAllocate(t, m)
	l.Lock()
	defer l.Unlock()
	idle := mustRetrieve(t, m, 3)
	idle.Lock()
	idle.Unlock() // cached, idle descriptor
	if n := fdsUnder(t, m.Dir()); n < 3 {
		t.Fatalf("only %d descriptors open under the directory; the test needs the registry and two lock files", n)
	}
	childFDs := func() string {
		t.Helper()
		out, err := exec.Command("ls", "-l", "/proc/self/fd/").CombinedOutput()
		if err != nil {
			t.Fatalf("ls: %v: %s", err, out)
		}
		return string(out)
	}
	if out := childFDs(); strings.Contains(out, m.Dir()) {
		t.Errorf("an exec'd child inherits descriptors of the lock directory:\n%s", out)
	}
	// Control: a descriptor opened without O_CLOEXEC does show up.
	fd, err := syscall.Open(m.LockPath(3), syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := childFDs()
	syscall.Close(fd)
	if !strings.Contains(out, m.LockPath(3)) {
		t.Errorf("control failed: a descriptor without O_CLOEXEC is not visible in the child:\n%s", out)
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

// TestBoundedFDs touches 10,000 IDs with room for 8 idle descriptors, and
// checks that the process's descriptors stay bounded while held locks keep
// theirs.
func TestBoundedFDs(t *testing.T) {
	// Not parallel: it counts the process's descriptors.
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd")
	}
	const maxOpen, held = 8, 20
	m, err := filelock.Create(filepath.Join(tmpfsDir(t), "locks"), 10_000, filelock.WithMaxOpenFiles(maxOpen))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := len(openFDs(t))
	var pinned []*filelock.Locker
	for id := range uint32(held) {
		l := mustRetrieve(t, m, 9_000+id)
		l.Lock()
		pinned = append(pinned, l)
	}
	limit := base + held + maxOpen + 2 // 2 for ReadDir and the pprof slack
	peak := 0
	for id := range uint32(9_000) {
		l := mustRetrieve(t, m, id)
		l.Lock()
		l.Unlock()
		if id%250 == 0 {
			if n := len(openFDs(t)); n > peak {
				peak = n
			}
		}
	}
	t.Logf("descriptors: %d before, peak %d while holding %d locks and touching 9,000 more (limit %d)", base, peak, held, limit)
	if peak > limit {
		t.Errorf("peak of %d descriptors, want at most %d", peak, limit)
	}
	if n := fdsUnder(t, m.Dir()); n > held+maxOpen+4 {
		t.Errorf("%d descriptors open under the directory, want at most %d", n, held+maxOpen+4)
	}
	// The held locks kept their descriptors, so they are still held.
	for _, l := range pinned {
		if !heldElsewhere(t, m.Dir(), l.ID()) {
			t.Errorf("lock %d lost while the descriptor cache evicted others", l.ID())
		}
		l.Unlock()
	}
	for id := uint32(9_020); id < 10_000; id++ {
		l := mustRetrieve(t, m, id)
		l.Lock()
		l.Unlock()
	}
	// Besides the idle lock files: the directory, locks/, the registry
	// and registry.lock.
	if n := fdsUnder(t, m.Dir()); n > maxOpen+4 {
		t.Errorf("after unlocking everything, %d descriptors open under the directory, want at most %d", n, maxOpen+4)
	}
}

// TestWaitersDoNotPinThreads parks 1,000 goroutines on one lock held by
// another Manager; they must not each hold an OS thread in flock(2).
func TestWaitersDoNotPinThreads(t *testing.T) {
	// Not parallel: it counts the process's threads.
	const waiters = 1000
	m := create(t, 10)
	holder := mustRetrieve(t, open(t, m.Dir()), 1)
	holder.Lock()
	threads := pprof.Lookup("threadcreate")
	before, beforeOS := threads.Count(), osThreads(t)
	var started, acquired atomic.Int64
	var wg sync.WaitGroup
	shared := mustRetrieve(t, m, 1)
	for i := range waiters {
		l := shared // half the waiters share one Locker
		if i%2 == 0 {
			l = mustRetrieve(t, m, 1) // the others have a Locker each
		}
		wg.Go(func() {
			started.Add(1)
			l.Lock()
			acquired.Add(1)
			l.Unlock()
		})
	}
	for started.Load() < waiters {
		runtime.Gosched()
	}
	// Give any implementation that blocks a thread per waiter the time
	// to do so; this sleep is not a measurement.
	time.Sleep(200 * time.Millisecond)
	after, afterOS := threads.Count(), osThreads(t)
	if n := acquired.Load(); n != 0 {
		t.Fatalf("%d goroutines acquired a lock another Manager holds", n)
	}
	t.Logf("threads created: %d before, %d with %d waiters; OS threads %d -> %d", before, after, waiters, beforeOS, afterOS)
	if after-before > 20 {
		t.Errorf("%d threads created for %d waiters", after-before, waiters)
	}
	if beforeOS > 0 && afterOS-beforeOS > 20 {
		t.Errorf("OS threads went from %d to %d with %d waiters", beforeOS, afterOS, waiters)
	}
	holder.Unlock()
	wg.Wait()
	if n := acquired.Load(); n != waiters {
		t.Errorf("%d of %d waiters acquired the lock", n, waiters)
	}
}

// osThreads returns the Threads line of /proc/self/status, or 0.
func osThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// TestFlockInterop checks that flock(1) on LockPath and Lock exclude each
// other.
func TestFlockInterop(t *testing.T) {
	t.Parallel()
	flockCmd, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("no flock(1)")
	}
	m := create(t, 10)
	l := mustRetrieve(t, m, 2)
	l.Lock()
	err = exec.Command(flockCmd, "-n", m.LockPath(2), "true").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("flock -n while Lock holds it: %v, want exit status 1", err)
	}
	l.Unlock()
	if err := exec.Command(flockCmd, "-n", m.LockPath(2), "true").Run(); err != nil {
		t.Errorf("flock -n after Unlock: %v", err)
	}
	// flock(1) holds it; TryLock fails until it lets go.
	cmd := exec.Command(flockCmd, "-n", m.LockPath(2), "sh", "-c", "echo held; cat >/dev/null")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "held\n" {
		t.Fatalf("flock(1) child: %q, %v", buf, err)
	}
	if l.TryLock() {
		l.Unlock()
		t.Error("TryLock succeeded while flock(1) holds the lock")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !l.TryLock() {
		t.Error("TryLock failed after flock(1) exited")
	} else {
		l.Unlock()
	}
}
