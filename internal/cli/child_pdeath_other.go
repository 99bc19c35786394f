//go:build darwin || netbsd || openbsd || dragonfly

package cli

import "syscall"

// dieWithLockdir does nothing here: the system has no parent-death
// signal, so a SIGKILL to lockdir frees the lock while its command may
// still run (docs/cli.md).
func dieWithLockdir(attr *syscall.SysProcAttr) {}
