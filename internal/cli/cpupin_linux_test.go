package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPinThreads checks pinThreads on this test process's own threads:
// every one on a single CPU; then, with releaseSelf, the caller's affinity
// back while the others stay; and a thread whose affinity was changed
// since (an operator's taskset) left as it is.
func TestPinThreads(t *testing.T) {
	runtime.LockOSThread() // so that "self" is one thread throughout
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	if orig.Count() < 2 {
		t.Skip("this process may run on one CPU only: nothing to pin")
	}
	if !seccompOff() {
		t.Skip("this process runs under a seccomp filter: pinThreads pins nothing")
	}
	want := threadAffinity(t, unix.Gettid())
	if len(threadAffinities(t)) < 2 {
		t.Fatal("the test process has one thread")
	}
	t.Cleanup(func() { setAllThreads(t, &orig) })

	p := pinThreads()
	if p.back != allCPUs() {
		t.Errorf("pinThreads in a process nobody restricted: the command would ask for %v, want every CPU", p.back)
	}
	for tid, cpus := range threadAffinities(t) {
		if strings.ContainsAny(cpus, ",-") {
			t.Errorf("pinned: thread %d may run on CPUs %s", tid, cpus)
		}
	}
	self := unix.Gettid()
	p.releaseSelf()
	for tid, cpus := range threadAffinities(t) {
		if tid == self && cpus != want {
			t.Errorf("after releaseSelf: this thread (%d) may run on CPUs %s, want %s", tid, cpus, want)
		}
		if tid != self && strings.ContainsAny(cpus, ",-") {
			t.Errorf("after releaseSelf: thread %d may run on CPUs %s, want the pinned one only", tid, cpus)
		}
	}

	// Pinned again, then moved to another CPU by someone else: left there.
	p = pinThreads()
	other := -1
	for i := range len(orig) * 64 {
		if orig.IsSet(i) && !p.one.IsSet(i) {
			other = i
			break
		}
	}
	var moved unix.CPUSet
	moved.Set(other)
	if err := unix.SchedSetaffinity(0, &moved); err != nil {
		t.Fatal(err)
	}
	p.releaseSelf()
	if got, want := threadAffinity(t, unix.Gettid()), strconv.Itoa(other); got != want {
		t.Errorf("releaseSelf on a thread moved to CPU %d since the pin: CPUs %s, want %s", other, got, want)
	}

	var nilPin *cpuPin
	nilPin.releaseSelf()
}

// TestCommandAffinity checks what the command's thread asks for: every
// CPU when lockdir had all its cpuset allows, so that the command follows
// a cpuset that grows; what lockdir had when taskset restricted it.
func TestCommandAffinity(t *testing.T) {
	set := func(cpus ...int) unix.CPUSet {
		var s unix.CPUSet
		for _, c := range cpus {
			s.Set(c)
		}
		return s
	}
	for _, tc := range []struct {
		name          string
		orig, allowed unix.CPUSet
		want          unix.CPUSet
	}{
		{"unrestricted", set(0, 1), set(0, 1), allCPUs()},
		{"unrestricted in a cpuset", set(2, 3), set(2, 3), allCPUs()},
		{"taskset", set(0, 1), set(0, 1, 2, 3), set(0, 1)},
		{"taskset in a cpuset", set(4, 6), set(4, 5, 6), set(4, 6)},
	} {
		if got := commandAffinity(tc.orig, tc.allowed); got != tc.want {
			t.Errorf("%s: commandAffinity = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSeccompOff checks seccompOff against /proc/self/status, which says
// the same in its Seccomp line (proc(5)).
func TestSeccompOff(t *testing.T) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	var line string
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
			line = strings.TrimSpace(v)
		}
	}
	if line == "" {
		t.Skip("no Seccomp line in /proc/self/status")
	}
	if got, want := seccompOff(), line == "0"; got != want {
		t.Errorf("seccompOff() = %v, but /proc/self/status says Seccomp: %s", got, line)
	}
}

// setAllThreads gives every thread of the test process the affinity set.
func setAllThreads(t *testing.T, set *unix.CPUSet) {
	t.Helper()
	tids, _ := ownThreads()
	for _, tid := range tids {
		if err := unix.SchedSetaffinity(tid, set); err != nil {
			t.Errorf("restoring thread %d's affinity: %v", tid, err)
		}
	}
}

// threadAffinities returns each thread's Cpus_allowed_list by thread ID.
func threadAffinities(t *testing.T) map[int]string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/self/task/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("listing /proc/self/task: %v, %d threads", err, len(dirs))
	}
	m := make(map[int]string)
	for _, d := range dirs {
		var tid int
		if _, err := fmt.Sscan(filepath.Base(d), &tid); err != nil {
			t.Fatal(err)
		}
		m[tid] = threadAffinity(t, tid)
	}
	return m
}

// threadAffinity returns thread tid's Cpus_allowed_list, such as "0-3".
func threadAffinity(t *testing.T, tid int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc/self/task", strconv.Itoa(tid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list in thread %d's status", tid)
	return ""
}
