//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lockdir/lockdir/filelock"
)

// Descriptors: the cache keeps the process's descriptors bounded, and none
// leaks into a child process.

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
