//go:build linux || freebsd

package cli

import (
	"runtime"
	"syscall"
)

// dieWithLockdir makes the command's process get SIGKILL when lockdir
// dies, on a system that can say so (PR_SET_PDEATHSIG, procctl
// PROC_PDEATHSIG_CTL). lockdir holds the lock, not the command; without
// this, a SIGKILL to lockdir's job (kill -9 %1, a supervisor's last
// resort), which the command's own process group does not receive, or a
// crash of lockdir, would free the lock while the command ran on (review
// 10b). The kernel sends the signal when the thread that forked ends, so
// that thread is kept for the rest of lockdir's life: lockdir exits once
// the command has.
//
// The kernel clears it when the command execs a set-user-ID or
// set-group-ID program.
func dieWithLockdir(attr *syscall.SysProcAttr) {
	runtime.LockOSThread()
	attr.Pdeathsig = syscall.SIGKILL
}
