package cli

import (
	"math"
	"os"
	"time"
)

// maxWaitSeconds is the longest -w that a time.Duration can hold.
const maxWaitSeconds = float64(math.MaxInt64 / int64(time.Second))

var lockCmd = &command{
	name:       "lock",
	args:       "[FLAGS] ID [FLAGS] [--] COMMAND [ARGS...]\n       lockdir lock [FLAGS] ID [FLAGS] -c STRING",
	summary:    "run a command while holding a lock, like flock(1)",
	ownSignals: true,
	flagsHelp:  lockFlagsHelp,
	help: `Takes lock ID, runs COMMAND, waits for it to exit, releases the lock and
exits with the command's exit status (128+N if a signal N killed it; 69, as
flock(1), if it cannot be executed). The ID need not be allocated. The
flags are flock(1)'s, short and long, and may come before the ID or between
the ID and the command; the first word after the ID that is not a flag
starts the command.

By default lock waits, blocked in flock(2), for as long as it takes; a
signal while waiting (Ctrl-C: exit 130) gives up at once and the command
never runs. With -n it gives up at once if the lock is busy, with -w after
SECONDS: exit 1, or the -E code, silently unless --verbose.

The command runs in a process group of its own, in the terminal's
foreground if lockdir was, so that Ctrl-C and Ctrl-Z reach it once; every
signal sent to lockdir alone (SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1,
SIGUSR2, SIGTSTP) is passed on to it once. When the command stops, lockdir
stops too, and resumes it when continued.

The lock is held by the lockdir process, not by the command, as with
flock(1) -o: background processes the command leaves behind do not hold
it. With -F lockdir execs the command in its own place instead, and the
command holds the lock.`,
	raw: func(args []string, g *globals) error {
		o, idArg, argv, err := parseLockArgs(args, g)
		if err == errHelp {
			return err
		}
		if err == errNoID {
			return usageError("lock", "lock: no lock ID given: lockdir lock [FLAGS] ID [--] COMMAND [ARGS...]")
		}
		if err != nil {
			return usageError("lock", "lock: %v", err)
		}
		id, err := parseID("lock", idArg)
		if err != nil {
			return err
		}
		if o.noFork && o.close {
			return usageError("lock", "lock: -F (--no-fork) and -o (--close) are incompatible: with -F the command holds the lock")
		}
		if o.commandSet {
			if len(argv) > 0 {
				return usageError("lock", "lock: -c takes exactly one command string, and no COMMAND after it")
			}
			sh := os.Getenv("SHELL")
			if sh == "" {
				sh = "/bin/sh"
			}
			argv = []string{sh, "-c", o.command}
		}
		if len(argv) == 0 {
			return usageError("lock", "lock: no command given: lockdir lock [FLAGS] %d [--] COMMAND [ARGS...]", id)
		}
		on, err := g.onCluster("lock")
		if err != nil {
			return err
		}
		if on {
			return runClusterLock(g, &o, id, argv)
		}
		return runLock(g, &o, id, argv)
	},
}

// timeout returns how long lock waits: negative for ever, zero not at
// all. -n wins over -w, as in flock(1).
func (o *lockOptions) timeout() time.Duration {
	switch {
	case o.nonblock:
		return 0
	case o.waitSet:
		return time.Duration(o.wait * float64(time.Second))
	}
	return -1
}
