package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPinThreads checks pinThreads on this test process's own threads:
// every one but sysmon on a single CPU, sysmon left as it was; then, with
// releaseSelf, the caller's affinity back while the others stay; and a
// thread whose affinity was changed since (an operator's taskset) left as
// it is.
func TestPinThreads(t *testing.T) {
	runtime.LockOSThread() // so that "self" is one thread throughout
	defer runtime.UnlockOSThread()
	orig := pinnable(t)
	want := threadAffinity(t, unix.Gettid())
	if len(threadAffinities(t)) < 2 {
		t.Fatal("the test process has one thread")
	}

	pid := unix.Getpid()
	tids, _ := ownThreads(pid)
	sysmon := sysmonThread(tids, pid)
	if sysmon == 0 {
		t.Fatalf("no sysmon among threads %v of process %d", tids, pid)
	}
	p := pinThreads()
	if p.back != allCPUs() {
		t.Errorf("pinThreads in a process nobody restricted: the command would ask for %v, want every CPU", p.back)
	}
	for tid, cpus := range threadAffinities(t) {
		if tid == sysmon && cpus != want {
			t.Errorf("pinned: sysmon (thread %d) may run on CPUs %s, want %s as before", tid, cpus, want)
		}
		if tid != sysmon && strings.ContainsAny(cpus, ",-") {
			t.Errorf("pinned: thread %d may run on CPUs %s", tid, cpus)
		}
	}
	self := unix.Gettid()
	p.releaseSelf()
	for tid, cpus := range threadAffinities(t) {
		if (tid == self || tid == sysmon) && cpus != want {
			t.Errorf("after releaseSelf: thread %d (this one: %v) may run on CPUs %s, want %s", tid, tid == self, cpus, want)
		}
		if tid != self && tid != sysmon && strings.ContainsAny(cpus, ",-") {
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

// TestPinRest checks what pinRest pins just before the command starts:
// sysmon, which pinThreads left as it was, and a thread on lockdir's first
// affinity again, as a thread that sysmon made would be (review 19); and
// what it leaves: a thread that an operator moved to another CPU, and the
// threads already pinned.
func TestPinRest(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig := pinnable(t)
	// Two threads of the test's own, made before the pin, to play the
	// stray and the moved one.
	tids, release := lockedThreads(t, 2)
	defer release()
	stray, moved := tids[0], tids[1]

	pid := unix.Getpid()
	all, _ := ownThreads(pid)
	sysmon := sysmonThread(all, pid)
	p := pinThreads()
	if p.one.Count() != 1 {
		t.Fatalf("pinThreads pinned to %v", p.one)
	}
	one, other := cpusOf(p.one)[0], -1
	for _, c := range cpusOf(orig) {
		if c != one {
			other = c
			break
		}
	}
	set := func(tid int, s unix.CPUSet) {
		t.Helper()
		if err := unix.SchedSetaffinity(tid, &s); err != nil {
			t.Fatal(err)
		}
	}
	var elsewhere unix.CPUSet
	elsewhere.Set(other)
	set(stray, orig)
	set(moved, elsewhere)
	p.pinRest()
	for _, c := range []struct {
		what string
		tid  int
		want int
	}{
		{"sysmon", sysmon, one},
		{"a thread on lockdir's first affinity", stray, one},
		{"a thread an operator moved", moved, other},
		{"this thread", unix.Gettid(), one},
	} {
		if got := threadAffinity(t, c.tid); got != strconv.Itoa(c.want) {
			t.Errorf("after pinRest: %s (thread %d) may run on CPUs %s, want %d", c.what, c.tid, got, c.want)
		}
	}
	var nilPin *cpuPin
	nilPin.pinRest()
}

// TestFindThreads checks probeThreads against /proc/self/task: with a span
// that reaches every thread, the probe finds the threads listed there, and
// no more than the runtime made, also in a binary linked with cgo (go test
// -race; review 19: the probe looked for the cgo M too, which has no
// thread, and never succeeded); with a span one short, the probe says it
// did not find them all, and findThreads lists /proc instead.
func TestFindThreads(t *testing.T) {
	pid := unix.Getpid()
	for try := 0; ; try++ {
		list := listThreads(pid)
		if len(list) == 0 || slices.Min(list) < pid {
			t.Skipf("threads %v of process %d: /proc not listed, or IDs wrapped around", list, pid)
		}
		span := slices.Max(list) - pid
		probed, ok := probeThreads(pid, span)
		short, shortOK := probeThreads(pid, span-1)
		fallback := findThreads(pid, span-1)
		if !slices.Equal(listThreads(pid), list) || len(list) != threadsMade() {
			// A thread came or went meanwhile, or is still ending.
			if try < 50 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			t.Fatalf("the test process's threads kept changing: %v, %d made", list, threadsMade())
		}
		sorted := slices.Sorted(slices.Values(list))
		if !ok || !slices.Equal(probed, sorted) {
			t.Errorf("probeThreads(%d, %d) = %v, %v; /proc/self/task lists %v (runtime: %d threads made)", pid, span, probed, ok, list, threadsMade())
		}
		if shortOK {
			t.Errorf("probeThreads(%d, %d) = %v, true, but thread %d lies beyond", pid, span-1, short, slices.Max(list))
		}
		if !slices.Equal(fallback, list) {
			t.Errorf("findThreads(%d, %d) = %v, want the list %v", pid, span-1, fallback, list)
		}
		return
	}
}

// TestPinFindsThreadsWithoutProc checks, with strace, that 'lockdir lock'
// finds its threads by probing their IDs, without listing /proc/self/task,
// and still pins them. The probe falls back on /proc when other processes
// took IDs between lockdir's threads, as those of tests running alongside
// may, so one run of five must do without.
func TestPinFindsThreadsWithoutProc(t *testing.T) {
	pinnable(t)
	bin, dir := signalInjectionSetup(t)
	var traces []string
	for range 5 {
		out := filepath.Join(t.TempDir(), "strace")
		cmd := exec.Command("strace", "-f", "-qq", "-o", out,
			"-e", "trace=openat,tgkill,sched_setaffinity", bin, "--dir", dir, "lock", "7", "--", "true")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("strace lockdir lock 7 -- true: %v\n%s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		trace := string(b)
		if !strings.Contains(trace, "/proc/self/task") && strings.Contains(trace, "tgkill(") &&
			strings.Count(trace, "sched_setaffinity(") >= 3 {
			return
		}
		traces = append(traces, trace)
	}
	t.Errorf("in five runs, lockdir listed /proc/self/task or pinned no threads each time; the last:\n%s", traces[len(traces)-1])
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

// pinnable skips the test unless pinThreads would pin this process's
// threads, and returns the process's affinity, which every thread gets back
// when the test ends.
func pinnable(t *testing.T) unix.CPUSet {
	t.Helper()
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
	t.Cleanup(func() { setAllThreads(t, &orig) })
	return orig
}

// lockedThreads makes n threads, each held by a goroutine locked to it,
// and returns their IDs and a function that lets them go.
func lockedThreads(t *testing.T, n int) (tids []int, release func()) {
	t.Helper()
	done := make(chan struct{})
	ids := make(chan int)
	for range n {
		go func() {
			runtime.LockOSThread()
			ids <- unix.Gettid()
			<-done
			// Unlocked, the thread stays, idle, rather than end with the
			// goroutine: a thread that is ending would still be listed in
			// /proc for a moment after the runtime stopped counting it.
			runtime.UnlockOSThread()
		}()
	}
	for range n {
		tids = append(tids, <-ids)
	}
	return tids, func() { close(done) }
}

// cpusOf returns the CPUs in set, lowest first.
func cpusOf(set unix.CPUSet) []int {
	var cpus []int
	for i := range len(set) * 64 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// setAllThreads gives every thread of the test process the affinity set.
func setAllThreads(t *testing.T, set *unix.CPUSet) {
	t.Helper()
	tids, _ := ownThreads(unix.Getpid())
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

// BenchmarkFindThreads measures the two ways to find this process's
// threads: probing their IDs with tgkill (probe), as 'lockdir lock' does
// when its threads' IDs follow its PID, and listing /proc/self/task (list),
// its fallback. The test process's threads are further apart than a fresh
// lockdir's, so probe tries more IDs here (reported as ids/op).
func BenchmarkFindThreads(b *testing.B) {
	pid := unix.Getpid()
	list := listThreads(pid)
	if len(list) == 0 || slices.Min(list) < pid {
		b.Skipf("threads %v of process %d: /proc not listed, or IDs wrapped around", list, pid)
	}
	span := slices.Max(list) - pid
	b.Run("probe", func(b *testing.B) {
		for b.Loop() {
			if _, ok := probeThreads(pid, span); !ok {
				b.Fatal("probe missed a thread")
			}
		}
		b.ReportMetric(float64(span+1), "ids/op")
	})
	b.Run("list", func(b *testing.B) {
		for b.Loop() {
			if len(listThreads(pid)) == 0 {
				b.Fatal("no threads listed")
			}
		}
	})
}
