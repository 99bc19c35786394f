package cli

import (
	"runtime"
	"slices"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A cpuPin holds lockdir's threads on one CPU, from just before 'lockdir
// lock' catches its signals, and gives the command the affinity that
// lockdir was started with.
//
// Why: signal.Notify makes a round trip to the runtime's signal-mask
// thread for each of lock's seven signals, and each is a handoff between
// two threads and back; so, less often, are a wait in a system call and
// the end of one. Threads free to run anywhere hand off across CPUs, and
// on a virtual machine waking the other CPU is the dearest part of a
// handoff: the seven round trips took 0.6-0.7 ms there, against 0.17-0.26
// ms with every thread on one CPU (docs/performance.md, "Round seven").
// lockdir, on one P, does one thing at a time, so one CPU is all it can
// use.
//
// Why every thread: the runtime hands a goroutine to whichever of its idle
// threads comes first, and those made before the pin would still run
// elsewhere (pinning the calling thread alone gained nothing); threads
// made later inherit the pin. Why for lockdir's whole life: giving the
// other threads their CPUs back, before or after the command starts, made
// 'lockdir lock 7 -- true' about 4% slower again, as the handoffs of the
// wait for the command went back to crossing CPUs.
//
// Why not sysmon, until the command starts: the runtime's monitor thread
// wakes every 20 us to 10 ms while lockdir runs, and on lockdir's CPU each
// wake-up would preempt the work it watches (left free, 'lockdir lock 7
// -- true' measured 1.14x go-floor against 1.17x; docs/performance.md,
// "Round eight"). But the threads that sysmon makes, to take a P back from
// a thread blocked in a system call, inherit its affinity, and would then
// hand off across CPUs for the rest of lockdir's life (review 19); so
// pinRest pins sysmon, and any thread still on lockdir's first affinity,
// just before the command starts.
//
// The threads are found by their IDs, which Linux gives out in order: the
// runtime says how many threads it made, and tgkill(2)'s signal 0 tries
// lockdir's PID and the IDs after it until that many answer as lockdir's.
// Only if they do not (another process took an ID in between, on a busy
// host) is /proc/self/task listed, which cost 12-40 us in a new process,
// against 1-2 us for the probe. Each listed ID is checked with tgkill too,
// to be a thread of lockdir as lockdir's PID namespace numbers them: a
// /proc of another namespace (unshare -p without a /proc of its own)
// numbers them otherwise, and setting those numbers would move other
// processes (review 17). Nothing is pinned if the calling thread is not found, when lockdir
// may run on one CPU only, or under a seccomp filter, which may kill a
// process for sched_setaffinity(2) (systemd's SystemCallFilter=~@resources
// does).
//
// Since Linux 6.2 the kernel keeps the set a thread last asked for with
// sched_setaffinity, a fork passes it on, and a cpuset that grows widens a
// thread's affinity only within it. A lockdir that nobody restricted
// (its affinity is all its cpuset allows) gives the command's thread every
// CPU, which the kernel bounds by the cpuset, so that the command follows
// its cpuset as it would have without lockdir, not the set it had when
// lockdir started (review 18). A lockdir started under taskset gives the
// set it started with.
type cpuPin struct {
	orig unix.CPUSet // lockdir's affinity when it started
	back unix.CPUSet // what the command's thread gets: orig, or every CPU
	one  unix.CPUSet // the CPU lockdir is pinned to; empty if not pinned
}

// pinThreads puts every thread of lockdir but sysmon on the CPU that the
// caller runs on, when it can. It is best effort: what it cannot do is
// left as it was.
func pinThreads() *cpuPin {
	p := &cpuPin{}
	orig := &p.orig
	if unix.SchedGetaffinity(0, orig) != nil || orig.Count() < 2 || !seccompOff() {
		return p
	}
	var cpu uint32
	if _, _, errno := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0); errno != 0 || !orig.IsSet(int(cpu)) {
		return p
	}
	pid := unix.Getpid()
	tids, ok := ownThreads(pid)
	if !ok {
		return p
	}
	// What the cpuset allows: asking this thread (pinned next anyway) for
	// every CPU gets it that.
	all, allowed := allCPUs(), *orig
	if unix.SchedSetaffinity(0, &all) != nil || unix.SchedGetaffinity(0, &allowed) != nil {
		allowed = *orig
	}
	p.back = commandAffinity(*orig, allowed)
	p.one.Set(int(cpu))
	sysmon := sysmonThread(tids, pid)
	for _, tid := range tids {
		if tid != sysmon {
			unix.SchedSetaffinity(tid, &p.one)
		}
	}
	return p
}

// pinRest pins, just before the command starts, every thread of lockdir
// that still has the affinity lockdir started with: sysmon, which
// pinThreads left free, and the threads made from it since (see cpuPin).
// A thread with any other affinity is left as it is: pinned already, or
// moved by an operator's taskset. It does nothing on a nil cpuPin, nor
// when nothing was pinned.
func (p *cpuPin) pinRest() {
	if p == nil || p.one.Count() == 0 {
		return
	}
	tids, _ := ownThreads(unix.Getpid())
	for _, tid := range tids {
		var cur unix.CPUSet
		if unix.SchedGetaffinity(tid, &cur) == nil && cur == p.orig {
			unix.SchedSetaffinity(tid, &p.one)
		}
	}
}

// releaseSelf gives the calling thread the affinity lockdir started with
// (or every CPU, see cpuPin), for the command that it starts next, which
// inherits it. So that the command starts from that thread, releaseSelf
// first locks the calling goroutine to it, for good (lockdir then starts
// the command and exits with it). A thread whose affinity is no longer
// the pin is left as it is: an operator's taskset, or a cpuset that
// changed and with it the affinity. It does nothing on a nil cpuPin, nor
// when nothing was pinned.
func (p *cpuPin) releaseSelf() {
	if p == nil || p.one.Count() == 0 {
		return
	}
	runtime.LockOSThread()
	var cur unix.CPUSet
	if unix.SchedGetaffinity(0, &cur) != nil || cur != p.one {
		return
	}
	if unix.SchedSetaffinity(0, &p.back) != nil {
		// No CPU of the set is allowed any more (a cpuset changed
		// meanwhile): every CPU, which the kernel bounds by the cpuset,
		// rather than leave the command on one CPU.
		all := allCPUs()
		unix.SchedSetaffinity(0, &all)
	}
}

// commandAffinity is the set that the command's thread asks for, given
// lockdir's affinity orig and what its cpuset allows: every CPU if orig is
// all the cpuset allows (nobody restricted lockdir), orig if it is less
// (taskset did). See cpuPin.
func commandAffinity(orig, allowed unix.CPUSet) unix.CPUSet {
	if orig == allowed {
		return allCPUs()
	}
	return orig
}

// allCPUs is the set of every CPU a CPUSet can name.
func allCPUs() unix.CPUSet {
	var all unix.CPUSet
	for i := range len(all) * 64 {
		all.Set(i)
	}
	return all
}

// probeSpan is how many thread IDs after lockdir's PID ownThreads tries
// before it lists /proc/self/task: lockdir's threads, 5-7 of them, come
// right after its PID unless other processes or threads took IDs in
// between.
const probeSpan = 64

// ownThreads returns the IDs of lockdir's threads, as lockdir's PID
// namespace numbers them (pid is lockdir's PID), and reports whether they
// include the calling thread.
func ownThreads(pid int) ([]int, bool) {
	tids := findThreads(pid, probeSpan)
	return tids, slices.Contains(tids, unix.Gettid())
}

// findThreads returns the IDs of the threads of process pid, the calling
// process: those that probeThreads finds within span IDs after pid, or, if
// it does not find them all, those that listThreads finds.
func findThreads(pid, span int) []int {
	if tids, ok := probeThreads(pid, span); ok {
		return tids
	}
	return listThreads(pid)
}

// probeThreads tries the IDs from pid to pid+span with tgkill(2)'s signal
// 0, which delivers nothing and succeeds only for a thread of process pid
// (the caller's), until as many threads answer as the runtime made. It
// reports whether they all did. Linux gives out IDs in order, so the first
// thread, pid, comes first, and sysmon, made next, second.
func probeThreads(pid, span int) ([]int, bool) {
	want := threadsMade()
	tids := make([]int, 0, want)
	for tid := pid; tid <= pid+span && len(tids) < want; tid++ {
		if unix.Tgkill(pid, tid, 0) == nil {
			tids = append(tids, tid)
		}
	}
	return tids, len(tids) == want
}

// threadsMade is how many threads the Go runtime has made for this
// process, the first included: one for each M, less the one M that a
// runtime linked with cgo makes at start-up for calls into Go from threads
// that C made, which has no thread of its own. Such a runtime makes a cgo
// call of its own before any package init (to say that it is ready), so
// NumCgoCall tells it apart. Review 19: under -race, which links cgo, the
// probe looked for one thread too many and always listed /proc.
func threadsMade() int {
	n, _ := runtime.ThreadCreateProfile(nil)
	if runtime.NumCgoCall() > 0 {
		n--
	}
	return n
}

// listThreads returns the IDs listed in /proc/self/task that tgkill(2)'s
// signal 0 says are threads of process pid, the caller's, in the order
// listed: the order they were made in. A /proc of another PID namespace
// lists IDs that are not (see cpuPin). It returns nil if it cannot list.
func listThreads(pid int) []int {
	fd, err := unix.Open("/proc/self/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var buf [1024]byte
	names := make([]string, 0, 16)
	for {
		n, err := unix.ReadDirent(fd, buf[:])
		if err != nil {
			return nil
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	tids := make([]int, 0, len(names))
	for _, name := range names {
		tid, err := strconv.Atoi(name)
		if err == nil && unix.Tgkill(pid, tid, 0) == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

// sysmonThread returns the ID, in tids as ownThreads returns them, of the
// thread that runs the runtime's sysmon, or 0 if there is none to tell:
// the second thread made, as runtime.main makes sysmon's before any
// package init runs.
func sysmonThread(tids []int, pid int) int {
	if len(tids) < 2 || tids[0] != pid {
		return 0
	}
	return tids[1]
}

// seccompOff reports whether lockdir runs without a seccomp filter, as
// prctl(PR_GET_SECCOMP) says. The question itself is safe to ask: the Go
// runtime calls prctl at start-up (PR_SET_VMA, to name its mappings), so
// a filter that kills for prctl leaves no Go program running, and one
// that refuses it with an error means no pin (review 18: this comment
// first named the command's parent-death signal, which -F does without).
// Reading /proc/self/status instead cost about 50 us.
func seccompOff() bool {
	mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	return err == nil && mode == 0
}
