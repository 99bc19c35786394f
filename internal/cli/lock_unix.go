//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

// lockSignals are the signals lock handles. While it waits for the lock,
// each ends the wait (exit 128+N); once the command runs, each is passed on
// to the command's process group. SIGTSTP is among them so that 'kill
// -TSTP' on lockdir stops the command, and lockdir with it (see runChild).
var lockSignals = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTSTP,
}

// caught returns the signals of sigs that lockdir was not started with
// ignored. A signal ignored at start stays ignored, for lockdir and so for
// its command, as under flock(1): nohup ignores SIGHUP, and a shell ignores
// SIGINT and SIGQUIT for a job started with & in a script, so that neither
// a hang-up nor a Ctrl-C ends the job. Notify would catch such a signal
// again, and lockdir would pass it on to a command that had not asked for
// it. The Go runtime keeps, and signal.Ignored reports, an inherited
// SIG_IGN for SIGHUP and SIGINT only: it takes the others over before main
// runs, and no trace of their SIG_IGN is left to read, so an ignored
// SIGQUIT (a script's & job), SIGTERM, SIGUSR1 or SIGUSR2 is caught and
// passed on (docs/cli.md says so).
func caught(sigs []os.Signal) []os.Signal {
	var c []os.Signal
	for _, s := range sigs {
		if !signal.Ignored(s) {
			c = append(c, s)
		}
	}
	return c
}

// startLock is the start of lock, on a directory or a cluster. It catches
// lock's signals before anything else (on a directory, runLock pins its
// threads just before, see cpuPin): from here on they are handled, not
// fatal (a signal while waiting ends the wait with a status, and later ones
// go to the command), and a Go program would drop a SIGUSR1 that came
// before (TestLockSignalInStartupWindow). Then it resolves the command,
// since failing after taking the lock would make others wait for nothing.
func startLock(argv []string) (sigs chan os.Signal, path string, err error) {
	sigs = make(chan os.Signal, 16)
	signal.Notify(sigs, caught(lockSignals)...)
	path, err = exec.LookPath(argv[0])
	if err != nil {
		return nil, "", errorf(exitCannotRun, "", "lock: cannot run %s: %v", argv[0], lookPathReason(err))
	}
	return sigs, path, nil
}

// runLock takes lock id as o says and runs argv while holding it.
func runLock(g *globals, o *lockOptions, id uint32, argv []string) error {
	// For lockdir's whole life; the command gets its CPUs back (cpuPin).
	pin := pinThreads()
	sigs, path, err := startLock(argv)
	if err != nil {
		return err
	}
	fd, err := lockCurrentFile(g, o, id, sigs)
	if err != nil {
		return err
	}
	if o.verbose {
		fmt.Fprintf(stderr, "lockdir: executing %s\n", argv[0])
	}
	if err := pendingSignals(sigs); err != nil {
		return err
	}
	if o.noFork {
		return execLocked(fd, path, argv, sigs, pin)
	}
	return runChild(path, argv, sigs, pin)
}

// lockCurrentFile opens lock id's file and takes its lock as o says, and
// returns the descriptor. A lock that had to wait is checked to be still
// on the file that the lock's name leads to: a cleaner (one that takes
// the lock to do its work) may have deleted the file meanwhile, and the
// next process would then lock a new one (review 11a). Then it opens the
// name again and waits for that lock, within what is left of -w: -w
// bounds the whole wait, however often the file is replaced (review 12).
func lockCurrentFile(g *globals, o *lockOptions, id uint32, sigs <-chan os.Signal) (int, error) {
	start := time.Now()
	timeout := o.timeout()
	for {
		fd, name, err := openLockFD(g, id, sigs)
		if err != nil {
			return -1, err
		}
		left := timeout
		if timeout > 0 {
			left = max(timeout-time.Since(start), time.Nanosecond)
		}
		waited, err := takeLock(g, o, id, fd, left, sigs)
		if err != nil {
			return -1, err
		}
		if !waited || !fileReplaced(fd, name) {
			if o.verbose {
				fmt.Fprintf(stderr, "lockdir: getting lock %d took %.6f seconds\n", id, time.Since(start).Seconds())
			}
			return fd, nil
		}
		if o.verbose {
			fmt.Fprintf(stderr, "lockdir: lock %d's file was deleted or replaced while lockdir waited for it; waiting for the file that has its name now\n", id)
		}
		unix.Flock(fd, unix.LOCK_UN)
		unix.Close(fd)
	}
}

// fileReplaced reports whether fd is no longer the file that name leads
// to: deleted, or replaced by another.
func fileReplaced(fd int, name string) bool {
	var held, cur unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		return false
	}
	if err := unix.Lstat(name, &cur); err != nil {
		return errors.Is(err, unix.ENOENT)
	}
	return held.Dev != cur.Dev || held.Ino != cur.Ino
}

// takeLock waits for lock id on fd, shared or not as o says, for timeout
// (see lockOptions.timeout), and reports whether it had to wait. When the
// lock stays busy, or a signal ends the wait, it returns the status to
// exit with, saying why with --verbose.
func takeLock(g *globals, o *lockOptions, id uint32, fd int, timeout time.Duration, sigs <-chan os.Signal) (waited bool, err error) {
	how := unix.LOCK_EX
	if o.shared {
		how = unix.LOCK_SH
	}
	waited, err = waitLock(fd, how, timeout, sigs)
	var busy busyError
	var se signalError
	switch {
	case err == nil:
		return waited, nil
	case errors.As(err, &busy):
		if busy.timeout > 0 {
			busy.timeout = o.timeout() // the whole -w, not what was left of it
		}
		if o.verbose {
			var msg string // set by op; read only once untilSignal saw it return
			if err := untilSignal(sigs, func() error { msg = busy.describe(g, id); return nil }); err != nil {
				return false, err
			}
			fmt.Fprintf(stderr, "lockdir: %s\n", msg)
		}
		return false, exitStatus(o.conflict)
	case errors.As(err, &se):
		if o.verbose {
			fmt.Fprintf(stderr, "lockdir: %v while waiting for lock %d; gave up\n", se, id)
		}
		return false, signalStatus(se.sig)
	}
	return false, fmt.Errorf("lock: waiting for lock %d: %w", id, err)
}

// pendingSignals handles the signals that came in while the lock was
// being taken: each still means "do not start", and so ends lockdir with
// its status, except SIGTSTP, which means "stop first".
func pendingSignals(sigs <-chan os.Signal) error {
	for {
		select {
		case s := <-sigs:
			if endsStart(s) {
				return signalStatus(s)
			}
		default:
			return nil
		}
	}
}

// lookPathReason is the part of exec.LookPath's error worth printing.
func lookPathReason(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// openLockFD opens lock id's file on a descriptor of lockdir's own, for
// flock(2), checked to be a regular file (never opened by the path again,
// where a group member could have swapped in a FIFO). Nothing else of the
// directory is used, so lock first tries filelock's short way, which makes
// Open's checks without the master lock (QuickOpenLockFile). A directory
// that it does not take (missing, damaged, an ID out of range, ...) goes
// through a Manager, which creates it if needed, and checks, repairs or
// explains as every other command does; a signal ends that wait for the
// master lock, as it ends the wait for the lock itself.
func openLockFD(g *globals, id uint32, sigs <-chan os.Signal) (fd int, name string, err error) {
	f, err := openLockFile(g, id, sigs)
	if err != nil {
		return -1, "", err
	}
	defer f.Close()
	// A descriptor of lockdir's own, past f's life, on the same open file
	// description: the one that was checked to be a regular file.
	fd, err = unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, "", &os.PathError{Op: "dup", Path: f.Name(), Err: err}
	}
	return fd, f.Name(), nil
}

// openLockFile opens lock id's file, the short way if it can.
func openLockFile(g *globals, id uint32, sigs <-chan os.Signal) (*os.File, error) {
	dir, opts, err := g.dirOptions()
	if err != nil {
		return nil, err
	}
	if f, ok := filelock.QuickOpenLockFile(dir, id, opts...); ok {
		return f, nil
	}
	var f *os.File // set by op; read only once untilSignal saw it return
	err = untilSignal(sigs, func() error {
		var err error
		f, err = openLockFileManaged(g, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// openLockFileManaged opens lock id's file through a Manager.
func openLockFileManaged(g *globals, id uint32) (*os.File, error) {
	m, err := g.openManager(true)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	f, err := m.OpenLockFile(id)
	if errors.Is(err, lock.ErrInvalidID) {
		if _, cerr := checkIDs(m, []uint32{id}); cerr != nil {
			return nil, cerr
		}
	}
	return f, err
}

// endsStart reports whether s, one of lock's signals that came before the
// command started, ends lockdir. SIGTSTP does not: with nothing to pass it
// on to yet, lockdir stops as if it were not handled, and reports false
// once it is continued.
func endsStart(s os.Signal) bool {
	if s == syscall.SIGTSTP {
		stopSelf()
		return false
	}
	return true
}

// untilSignal runs op, which may block, and returns its error, unless one
// of lock's signals comes first: then it returns that signal's status and
// leaves op running, so it must only be used by a process that then exits.
// SIGTSTP stops lockdir meanwhile, as if it were not handled.
func untilSignal(sigs <-chan os.Signal, op func() error) error {
	done := make(chan error, 1)
	go func() { done <- op() }()
	for {
		select {
		case err := <-done:
			return err
		case s := <-sigs:
			if endsStart(s) {
				return signalStatus(s)
			}
		}
	}
}

// busyError is waitLock's answer when the lock stays busy.
type busyError struct {
	timeout time.Duration // 0 for -n
}

func (e busyError) Error() string { return "lock is busy" }

// describeWait bounds how long describe waits for the master lock, which
// a stopped 'lockdir alloc' can hold for ever: a busy -n must still answer
// at once, if with less to say.
const describeWait = 200 * time.Millisecond

// describe says who holds lock id, for --verbose: the directory is
// scanned only on this slow path.
func (e busyError) describe(g *globals, id uint32) string {
	holders := " by another process"
	if dir, opts, err := g.dirOptions(); err == nil {
		if m, err := filelock.Open(dir, append(opts, filelock.WithTimeout(describeWait))...); err == nil {
			holders = describeHolders(m, id)
			m.Close()
		}
	}
	if e.timeout > 0 {
		return fmt.Sprintf("timed out after %v waiting for lock %d, held%s", e.timeout, id, holders)
	}
	return fmt.Sprintf("lock %d is held%s", id, holders)
}

type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string { return e.sig.String() + " received" }

// waitLock takes flock(2) lock how on fd. A negative timeout waits for
// ever, zero not at all. The wait happens inside the kernel: a goroutine
// blocks in flock(2), so that waiting costs no CPU and the waiter shows in
// /proc/locks and lslocks. On a timeout or a signal waitLock returns with
// that goroutine still blocked; lockdir then exits, and the kernel drops
// the waiter with the process. So waitLock must only be used by a process
// that exits when it fails.
func waitLock(fd, how int, timeout time.Duration, sigs <-chan os.Signal) (waited bool, err error) {
	err = flockRetry(fd, how|unix.LOCK_NB)
	if err != unix.EWOULDBLOCK {
		return false, err
	}
	if timeout == 0 {
		return false, busyError{}
	}
	got := make(chan error, 1)
	go func() { got <- flockRetry(fd, how) }()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case err := <-got:
			return true, err
		case <-expired:
			return false, busyError{timeout: timeout}
		case s := <-sigs:
			if endsStart(s) {
				return false, signalError{s.(syscall.Signal)}
			}
		}
	}
}

// flockRetry is flock(2), retried when a signal interrupts it.
func flockRetry(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}

// execLocked replaces lockdir with the command (-F, flock(1)'s --no-fork):
// the lock's descriptor stays open across the exec, so the command holds
// the lock, and its children too, like flock(1) without -o.
//
// A signal that came before the exec must still end lockdir, with its
// status, as it would without -F. The Go runtime may have taken one that
// its os/signal goroutine has not yet put on sigs (with one P, it runs
// only when lockdir waits): signal.Stop waits until every signal taken is
// on sigs, and from then on the signals take their default action, so a
// later one ends lockdir before the exec (review 10b: a SIGTERM as the
// lock was taken was lost half the time).
//
// The exec'd command gets the affinity of the thread that execs: pin is
// released on it, last.
func execLocked(fd int, path string, argv []string, sigs chan os.Signal, pin *cpuPin) error {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("lock: keeping the lock across exec: %w", err)
	}
	signal.Stop(sigs)
	if err := pendingSignals(sigs); err != nil {
		return err
	}
	signal.Reset()
	pin.releaseSelf()
	err := syscall.Exec(path, argv, os.Environ())
	if err == syscall.ENOEXEC {
		err = syscall.Exec(shellPath, shellArgv(path, argv), os.Environ())
	}
	return errorf(exitCannotRun, "", "lock: cannot run %s: %v", argv[0], err)
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
