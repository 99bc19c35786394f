package cli

import (
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A cpuPin holds lockdir's threads on one CPU while 'lockdir lock' starts,
// and gives them back the affinity lockdir started with.
//
// Why: signal.Notify makes a round trip to the runtime's signal-mask
// thread for each of lock's seven signals, and each is a handoff between
// two threads and back. Threads free to run anywhere hand off across CPUs,
// and on a virtual machine waking the other CPU is the dearest part of a
// handoff: the seven round trips took about 0.5-0.7 ms there, against
// 0.25 ms with every thread on one CPU, and 'lockdir lock 7 -- true' ran
// about 4% faster in all (docs/performance.md, "Round seven").
//
// Why every thread: the runtime hands a goroutine to whichever of its idle
// threads comes first, and those made before the pin would still run
// elsewhere (pinning the calling thread alone gained nothing); threads
// made while pinned inherit the pin. The threads are found in
// /proc/self/task. None of lockdir's ever exits (no goroutine of lockdir
// ends while locked to its thread), so no ID read there can meanwhile
// name another process's thread. Without /proc, nothing is pinned.
//
// lockdir is pinned only while it starts: release is called before any
// wait (the lock busy, the long way through a Manager), and releaseSelf
// before the command starts, on the thread that starts it, whose affinity
// the command inherits; release follows once it has started.
type cpuPin struct {
	orig   unix.CPUSet // the affinity lockdir started with
	pinned bool        // the threads other than the caller may still be pinned
}

// pinThreads puts every thread of lockdir on the CPU that the caller runs
// on, unless lockdir may run on one CPU only anyway. It is best effort:
// what it cannot do is left as it was.
func pinThreads() *cpuPin {
	p := &cpuPin{}
	if unix.SchedGetaffinity(0, &p.orig) != nil || p.orig.Count() < 2 {
		return p
	}
	var cpu uint32
	if _, _, errno := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0); errno != 0 || !p.orig.IsSet(int(cpu)) {
		return p
	}
	var one unix.CPUSet
	one.Set(int(cpu))
	p.pinned = setThreadsAffinity(&one)
	return p
}

// releaseSelf gives the calling thread the affinity lockdir started with.
// The caller locks its goroutine to its thread first if it then starts the
// command. It does nothing on a nil cpuPin or once released.
func (p *cpuPin) releaseSelf() {
	if p == nil || !p.pinned {
		return
	}
	if unix.SchedSetaffinity(0, &p.orig) != nil {
		// No CPU of the set is allowed any more (a cpuset changed
		// meanwhile): every CPU, which the kernel bounds by the cpuset,
		// rather than leave the command on one CPU.
		var all unix.CPUSet
		for i := range len(all) * 64 {
			all.Set(i)
		}
		unix.SchedSetaffinity(0, &all)
	}
}

// release gives every thread of lockdir the affinity it started with, the
// calling thread last. It is idempotent, and does nothing on a nil cpuPin.
func (p *cpuPin) release() {
	if p == nil || !p.pinned {
		return
	}
	setThreadsAffinity(&p.orig)
	p.releaseSelf()
	p.pinned = false
}

// setThreadsAffinity sets the affinity of every thread of lockdir to set,
// and reports whether it could list them.
func setThreadsAffinity(set *unix.CPUSet) bool {
	fd, err := unix.Open("/proc/self/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var buf [1024]byte
	names := make([]string, 0, 16)
	for {
		n, err := unix.ReadDirent(fd, buf[:])
		if err != nil {
			return false
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	for _, name := range names {
		if tid, err := strconv.Atoi(name); err == nil {
			unix.SchedSetaffinity(tid, set)
		}
	}
	return true
}
