package cli

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	scriptCommands["noaffinity"] = noAffinityMain
	// [seccomp]: the kernel has seccomp, which noaffinity needs.
	scriptConditions["seccomp"] = func() bool {
		_, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
		return err == nil
	}
}

// noAffinityMain is the test scripts' "noaffinity COMMAND [ARGS...]": it
// runs COMMAND under a seccomp filter that kills the process at its first
// sched_setaffinity(2), as systemd's SystemCallFilter=~@resources does,
// for lock_affinity.txtar, which checks that lockdir pins nothing there.
func noAffinityMain() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: noaffinity COMMAND [ARGS...]")
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "noaffinity:", err)
		os.Exit(2)
	}
	// A filter is the calling thread's, and passes to what it execs.
	runtime.LockOSThread()
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_SCHED_SETAFFINITY},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_KILL_PROCESS},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "noaffinity: no_new_privs:", err)
		os.Exit(2)
	}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "noaffinity: seccomp:", err)
		os.Exit(2)
	}
	err = syscall.Exec(path, os.Args[1:], os.Environ())
	fmt.Fprintln(os.Stderr, "noaffinity:", err)
	os.Exit(2)
}
