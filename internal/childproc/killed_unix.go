//go:build unix

package childproc

import (
	"errors"
	"os/exec"
	"syscall"
)

// Killed reports whether err, from exec.Cmd.Wait, says that SIGKILL ended
// the child.
func Killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
