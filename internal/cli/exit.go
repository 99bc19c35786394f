package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/lockdir/lockdir/lock"
)

// Exit codes. They are documented in docs/cli.md; do not renumber them.
const (
	exitOK       = 0 // success
	exitBusy     = 1 // lock: the lock is busy (-n) or the wait timed out (-w); see -E
	exitUsage    = 2 // bad command line: unknown flag, missing or malformed argument, ID out of range
	exitDir      = 3 // the lock directory is missing, unusable or corrupt
	exitConflict = 4 // refused because of the locks' state; nothing was changed, but see free
	exitFailure  = 5 // any other failure (I/O error, could not start a process, ...)
	exitViolated = 6 // check: mutual exclusion was violated on this filesystem
	exitLost     = 7 // lock on etcd: the lock was lost while the command ran, whatever its status

	// exitCannotRun is flock(1)'s code (EX_UNAVAILABLE from sysexits.h)
	// for a command it cannot execute, whether missing or not executable;
	// lock uses it so that scripts written for flock(1) keep working.
	exitCannotRun = 69
	// exitQuit is lockdir's status after SIGQUIT (Ctrl-\), 128+3 as a
	// shell reports a process that SIGQUIT killed; Go's default would print
	// every goroutine's stack and exit 2.
	exitQuit = 131
)

// exitError is an error with an exit code and, optionally, advice on what
// to do about it. Commands return it; run prints it and exits.
type exitError struct {
	code int
	err  error
	hint string // what to do; printed after the error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errorf is an exitError with code, hint and a message made as fmt.Errorf
// makes one.
func errorf(code int, hint, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...), hint: hint}
}

// usageError reports a bad command line for cmd.
func usageError(cmd, format string, args ...any) error {
	hint := "run 'lockdir -h' for usage"
	if cmd != "" {
		hint = "run 'lockdir " + cmd + " -h' for usage"
	}
	return errorf(exitUsage, hint, format, args...)
}

// exitStatus is returned by a command that wants a specific exit status
// without printing anything (lock passes on its command's status).
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// signalStatus is the status that reports signal sig: 128+N, as a shell
// reports a process that signal N killed. lock returns it when a signal
// killed its command or ended its wait, check when a signal stopped it.
func signalStatus(sig os.Signal) exitStatus {
	return exitStatus(128 + int(sig.(syscall.Signal)))
}

// report prints err, if any, to stderr and returns the exit code.
func report(err error) int {
	if err == nil {
		return exitOK
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	code, hint := classify(err)
	fmt.Fprintf(stderr, "lockdir: %v\n", err)
	if hint != "" {
		fmt.Fprintf(stderr, "lockdir: %s\n", hint)
	}
	return code
}

// classify returns the exit code and advice for an error that reached run.
func classify(err error) (int, string) {
	var e *exitError
	if errors.As(err, &e) {
		return e.code, e.hint
	}
	switch {
	case errors.Is(err, lock.ErrCorrupt):
		return exitDir, corruptHint
	case errors.Is(err, lock.ErrInvalidID):
		return exitUsage, "run 'lockdir status' to see the directory's capacity"
	case errors.Is(err, lock.ErrAllocated), errors.Is(err, lock.ErrNotAllocated):
		return exitConflict, "run 'lockdir status' to see which locks are allocated; nothing was changed"
	case errors.Is(err, lock.ErrNoFreeLocks):
		return exitConflict, "run 'lockdir status' to see the allocated locks"
	case errors.Is(err, fs.ErrPermission):
		return exitDir, "run as the user that owns the lock directory"
	}
	return exitFailure, ""
}
