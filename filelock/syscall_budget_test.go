//go:build linux

package filelock_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// syscallBudget is the number of system calls each phase of
// TestSyscallMarkers may make per operation, counted on the one thread that
// runs the phases. These are the figures docs/performance.md promises.
var syscallBudget = []struct {
	phase string
	want  map[string]int // exact count per op of each system call
}{
	{"LockUnlock", map[string]int{"flock": 2}},
	{"TryLockUnlock", map[string]int{"flock": 2}},
	{"LockContextUnlock", map[string]int{"flock": 2}},
	{"RLockRUnlock", map[string]int{"flock": 2}},
	{"TryRLockRUnlock", map[string]int{"flock": 2}},
	{"RLockContextRUnlock", map[string]int{"flock": 2}},
	{"RetrieveLock", map[string]int{}},
	// A lock file's first open closes the descriptor of an ID locked
	// only once before, so that the descriptor table does not grow.
	{"ColdTouch", map[string]int{"openat": 1, "flock": 2, "close": 1}},
	// A new ID's file: openat finds none, openat O_CREAT|O_EXCL creates
	// it, fchmod gives it its mode whatever the umask.
	{"FirstLockUnlock", map[string]int{"openat": 2, "fchmod": 1, "flock": 2, "close": 1}},
	// A kept descriptor's check, once per recheckAfter: an fstat of it
	// and an fstatat of its name (recheck.go).
	{"LockUnlockRechecked", map[string]int{"flock": 2, "fstat": 1, "newfstatat": 1}},
	// AllocateLock and Free: two registry changes, each 2 flock, 2
	// pwrite64 and 2 newfstatat (registry.lock's name, checked once the
	// master lock is taken, and the registry's).
	{"AllocateLock", map[string]int{"flock": 4, "newfstatat": 4, "pwrite64": 4}},
	// Allocate, then the first Lock+Unlock of the new ID: the registry
	// change (2 flock, 2 newfstatat, 2 pwrite64), O_CREAT|O_EXCL of the new
	// lock file and its fchmod, 2 flock, and a probation close.
	{"AllocateFirstLock", map[string]int{"flock": 4, "newfstatat": 2, "pwrite64": 2, "openat": 1, "fchmod": 1, "close": 1}},
}

// budgetN is how many times TestSyscallBudget runs each operation.
const budgetN = 200

// TestSyscallBudget runs TestSyscallMarkers under strace and checks every
// phase's system calls against syscallBudget: the hot path is two flock
// calls, RetrieveLock none, and no phase sleeps or waits on a futex.
func TestSyscallBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary under strace")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace is not installed")
	}
	out := filepath.Join(t.TempDir(), "strace.out")
	cmd := exec.Command(strace, "-f", "-qq", "-o", out, os.Args[0], "-test.run=^TestSyscallMarkers$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LOCKDIR_SYSCOUNT=1", "LOCKDIR_SYSCOUNT_N="+strconv.Itoa(budgetN), "GOMAXPROCS=1", "GOGC=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(b), "PTRACE_TRACEME") || strings.Contains(string(b), "Operation not permitted") {
			t.Skipf("strace cannot trace here: %s", b)
		}
		t.Fatalf("strace %s: %v\n%s", os.Args[0], err, b)
	}
	got := countPhases(t, out)
	for _, b := range syscallBudget {
		calls, ok := got[b.phase]
		if !ok {
			t.Errorf("phase %s: no markers in the trace", b.phase)
			continue
		}
		for name, n := range calls {
			if n%budgetN != 0 || n/budgetN != b.want[name] {
				t.Errorf("%s: %.3f %s calls per op, want %d", b.phase, float64(n)/budgetN, name, b.want[name])
			}
		}
		for name, n := range b.want {
			if calls[name] == 0 && n > 0 {
				t.Errorf("%s: no %s calls, want %d per op", b.phase, name, n)
			}
		}
	}
}

// runtimeCalls are the system calls countPhases leaves out.
var runtimeCalls = map[string]bool{
	"rt_sigreturn": true, "futex": true, "sched_yield": true,
	"mmap": true, "munmap": true, "madvise": true,
}

var (
	straceLine  = regexp.MustCompile(`^(\d+) +([a-z_0-9]+)\(`)
	straceBegin = regexp.MustCompile(`lockdir-syscount/begin/([A-Za-z]+)`)
)

// countPhases counts, per phase of TestSyscallMarkers, the system calls of
// the thread that made the phase's markers, leaving out runtimeCalls, which
// the runtime makes on its own account:
//   - rt_sigreturn, the return from the runtime's preemption signal;
//   - futex: under ptrace every system call takes tens of microseconds,
//     long enough for the runtime's sysmon to hand the thread's P to
//     another thread, so that returning from the call waits on a futex (an
//     untraced flock takes about a microsecond and never does; a futex that
//     filelock itself waited on would show as blocking in the benchmarks);
//   - sched_yield, with which the runtime's own locks spin on a loaded
//     machine;
//   - mmap, munmap and madvise, with which the runtime grows and trims its
//     heap (and the race detector its shadow memory) when an allocation
//     crosses a boundary; allocations are counted by the AllocsPerRun tests.
func countPhases(t *testing.T, path string) map[string]map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]map[string]int{}
	var phase, tid string
	on := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		m := straceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch {
		case strings.Contains(line, "lockdir-syscount/begin/"):
			phase, tid, on = straceBegin.FindStringSubmatch(line)[1], m[1], true
			counts[phase] = map[string]int{}
			continue
		case strings.Contains(line, "lockdir-syscount/end/"), strings.Contains(line, "lockdir-syscount/pause"):
			on = false
			continue
		case strings.Contains(line, "lockdir-syscount/resume"):
			on = true
			continue
		}
		if on && m[1] == tid && !runtimeCalls[m[2]] {
			counts[phase][m[2]]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}
