package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

// maxWaitSeconds is the longest -w that a time.Duration can hold.
const maxWaitSeconds = float64(math.MaxInt64 / int64(time.Second))

var lockCmd = &command{
	name:           "lock",
	args:           "[-n | -w SECONDS] [-E CODE] [-o] ID [--] COMMAND [ARGS...]",
	summary:        "run a command while holding a lock, like flock(1)",
	stopAtFirstArg: true,
	help: `Takes lock ID, runs COMMAND, waits for it to exit, releases the lock and
exits with the command's exit status (128+N if a signal N killed it; 126 if
it cannot be executed, 127 if it is not found). The ID need not be allocated.

By default lock waits for as long as it takes; Ctrl-C (or SIGTERM) while
waiting gives up cleanly, exit 130 (143). With -n it gives up at once if
another process holds the lock, with -w after SECONDS: exit 1, or the -E
code. While the command runs, SIGINT, SIGTERM and SIGHUP sent to lockdir are
passed on to it.

The lock is held by the lockdir process, not by the command: the command
inherits only stdin, stdout and stderr, never the lock's file descriptor.
So the lock is held exactly until COMMAND exits, even if it leaves
background processes behind; they do not hold the lock. If lockdir itself is
killed with SIGKILL, the lock is released while COMMAND may still run. This
is flock(1)'s behaviour with -o (--close), which lockdir accepts for
compatibility; to give a command's background processes the lock, use
flock(1) itself: flock "$(lockdir path ID)" COMMAND.`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		nonblock := fl.Bool("n", false, "fail at once (exit 1 or the -E code) if the lock is held")
		wait := fl.Float64("w", -1, "fail (exit 1 or the -E code) after waiting `SECONDS` for the lock")
		conflict := fl.Int("E", exitBusy, "exit `CODE` when the lock is busy (-n) or the wait times out (-w)")
		fl.Bool("o", false, "accepted for flock(1) compatibility: COMMAND never inherits the lock")
		return func(args []string) error {
			waitSet := false
			fl.Visit(func(f *flag.Flag) { waitSet = waitSet || f.Name == "w" })
			if *nonblock && waitSet {
				return usageError("lock", "lock: -n and -w are mutually exclusive")
			}
			if waitSet && !(*wait >= 0 && *wait <= maxWaitSeconds) { // also NaN
				return usageError("lock", "lock: -w %v: the timeout must be 0 to %d seconds", *wait, int64(maxWaitSeconds))
			}
			if *conflict < 0 || *conflict > 255 {
				return usageError("lock", "lock: -E %d: exit codes are 0 to 255", *conflict)
			}
			if len(args) == 0 {
				return usageError("lock", "lock: no lock ID given")
			}
			id, err := parseID("lock", args[0])
			if err != nil {
				return err
			}
			argv := args[1:]
			if len(argv) > 0 && argv[0] == "--" {
				argv = argv[1:]
			}
			if len(argv) == 0 {
				return usageError("lock", "lock: no command given: lockdir lock %d -- COMMAND [ARGS...]", id)
			}
			timeout := time.Duration(-1)
			switch {
			case *nonblock:
				timeout = 0
			case waitSet:
				timeout = time.Duration(*wait * float64(time.Second))
			}
			return runLocked(g, id, timeout, *conflict, argv)
		}
	},
}

// signals that lock handles: they cancel the wait for the lock, and are
// passed on to the command once it runs.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string { return e.sig.String() + " received" }

// runLocked runs argv while holding lock id. A negative timeout waits
// forever, zero does not wait.
func runLocked(g *globals, id uint32, timeout time.Duration, conflictCode int, argv []string) error {
	// Resolve the command first: failing after taking the lock would make
	// others wait for nothing.
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := 127
		if errors.Is(err, fs.ErrPermission) {
			code = 126
		}
		return errorf(code, "", "lock: cannot run %s: %v", argv[0], err)
	}

	m, err := g.openForIDs(true, []uint32{id})
	if err != nil {
		return err
	}
	defer m.Close()
	l, err := m.RetrieveLock(id)
	if err != nil {
		return err
	}
	lk := l.(*filelock.Locker)

	// One channel for the whole run: while waiting, a signal cancels the
	// wait; once the command runs, signals are passed on to it.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)

	if timeout == 0 {
		if !lk.TryLock() {
			fmt.Fprintf(stderr, "lockdir: lock %d is held%s\n", id, describeHolders(m, id))
			return exitStatus(conflictCode)
		}
	} else {
		ctx, cancel := context.WithCancelCause(context.Background())
		if timeout > 0 {
			var stop context.CancelFunc
			ctx, stop = context.WithTimeout(ctx, timeout)
			defer stop()
		}
		waiting := make(chan struct{})
		watcherDone := make(chan struct{})
		go func() {
			defer close(watcherDone)
			select {
			case s := <-sigs:
				cancel(signalError{s.(syscall.Signal)})
			case <-waiting:
			}
		}()
		err := lk.LockContext(ctx)
		close(waiting)
		<-watcherDone
		if err == nil && context.Cause(ctx) != nil {
			// A signal arrived just as we got the lock: honour it.
			lk.Unlock()
			err = context.Cause(ctx)
		}
		cancel(nil)
		if err != nil {
			var se signalError
			if errors.As(context.Cause(ctx), &se) {
				fmt.Fprintf(stderr, "lockdir: %v while waiting for lock %d; gave up\n", se, id)
				return exitStatus(128 + int(se.sig))
			}
			if errors.Is(err, context.DeadlineExceeded) {
				fmt.Fprintf(stderr, "lockdir: timed out after %v waiting for lock %d, held%s\n", timeout, id, describeHolders(m, id))
				return exitStatus(conflictCode)
			}
			return fmt.Errorf("waiting for lock %d: %w", id, err)
		}
	}
	defer lk.Unlock()

	cmd := &exec.Cmd{
		Path:   path,
		Args:   argv,
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	}
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		return errorf(code, "", "lock: cannot run %s: %v", argv[0], err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("lock: waiting for %s: %w", argv[0], err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitStatus(128 + int(ws.Signal()))
	}
	return exitStatus(ee.ExitCode())
}

// describeHolders names the processes that hold lock id, for messages:
// " by PID 123 (sleep)", or " by another process" if unknown.
func describeHolders(m *filelock.Manager, id uint32) string {
	holders, err := m.Holders()
	if err != nil {
		return " by another process"
	}
	s := ""
	for _, h := range holders {
		if h.ID != id || h.PID <= 0 {
			continue
		}
		if s == "" {
			s = " by PID "
		} else {
			s += ", "
		}
		s += fmt.Sprintf("%d", h.PID)
		if c := procComm(h.PID); c != "" {
			s += " (" + c + ")"
		}
	}
	if s == "" {
		return " by another process"
	}
	return s
}
