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
// every one on a single CPU, then the caller's own affinity back with
// releaseSelf while the others stay, then every thread's with release.
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
	want := threadAffinity(t, unix.Gettid())
	if len(threadAffinities(t)) < 2 {
		t.Fatal("the test process has one thread")
	}

	p := pinThreads()
	defer p.release()
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
			t.Errorf("after releaseSelf: thread %d may run on CPUs %s, want one only until release", tid, cpus)
		}
	}
	p.release()
	p.release() // idempotent
	for tid, cpus := range threadAffinities(t) {
		if cpus != want {
			t.Errorf("after release: thread %d may run on CPUs %s, want %s", tid, cpus, want)
		}
	}
	var nilPin *cpuPin
	nilPin.releaseSelf()
	nilPin.release()
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
