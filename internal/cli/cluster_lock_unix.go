//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

// runClusterLock is runLock on a cluster's lock space: it takes lock id as
// o says and runs argv while holding it. If the lock is lost while the
// command runs (the lease expired or was revoked, or the cluster was out
// of reach for longer than the TTL), it says so on stderr, sends SIGTERM to
// the command's process group, waits for the command, and exits with
// exitLost: another process may hold the lock from then on, so the
// command's work is no longer protected, and a script must not take its
// success for granted.
func runClusterLock(g *globals, o *lockOptions, id uint32, argv []string) error {
	// What cannot mean anything on etcd: a shared lock (etcdlock's are
	// exclusive) and -F, whose command would hold the lock by inheriting
	// a descriptor; etcd's lock is held by lockdir's lease.
	if o.shared {
		return usageError("lock", "lock: -s (--shared): locks on etcd are exclusive only")
	}
	if o.noFork {
		return usageError("lock", "lock: -F (--no-fork): on etcd the lock is held by lockdir's lease, which an exec'd command cannot keep alive")
	}
	sigs, path, err := startLock(argv)
	if err != nil {
		return err
	}
	s, err := openSpaceOrSignal(g, sigs)
	if err != nil {
		return err
	}
	// Ending without a command (a signal, busy, an error), or after a
	// command that a signal ended, lockdir gives etcd quitGrace to take
	// back its key; after a command that ended by itself, as long as etcd
	// takes or a signal allows.
	var h Held
	limit := quitGrace
	defer func() { releaseWithin(h, s, limit) }()
	if err := checkSpaceIDs(s, []uint32{id}); err != nil {
		return err
	}
	if h, err = takeClusterLock(s, o, id, sigs); err != nil {
		return err
	}
	if o.verbose {
		fmt.Fprintf(stderr, "lockdir: executing %s\n", argv[0])
	}
	if err := pendingSignals(sigs); err != nil {
		return err
	}
	// A signal passed on to the command (a service manager's SIGTERM)
	// is one to lockdir too: forwardSignals takes it from sigs, so a
	// channel of its own keeps a note of it (found by review).
	stopping := make(chan os.Signal, 1)
	signal.Notify(stopping, quitSignals()...)
	err = runChildHeld(path, argv, sigs, id, h, stopping)
	select {
	case <-stopping:
	default:
		limit = 0
	}
	return err
}

// openSpaceOrSignal opens the lock space for lock, unless a signal comes
// first: an unreachable cluster takes up to --dial-timeout to say so, and
// Ctrl-C must not wait for that. lockdir exits on the signal, which ends
// the opening with the process; nothing is held yet.
func openSpaceOrSignal(g *globals, sigs <-chan os.Signal) (Space, error) {
	var s Space // set by op; read only once untilSignal saw it return
	err := untilSignal(sigs, func() error {
		var err error
		s, err = g.openSpace("lock", filelock.DefaultNumLocks)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// takeClusterLock waits for lock id for as long as o says. A signal while
// waiting ends the wait, as on files.
func takeClusterLock(s Space, o *lockOptions, id uint32, sigs <-chan os.Signal) (Held, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timeout := o.timeout()
	// The signals that end the wait; the watcher is gone before the
	// command starts, so that forwardSignals gets every later one.
	var sig os.Signal
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case s := <-sigs:
				if !endsStart(s) {
					continue
				}
				sig = s
				cancel()
				return
			case <-stop:
				return
			}
		}
	}()
	start := time.Now()
	type result struct {
		h    Held
		busy bool
		err  error
	}
	got := make(chan result, 1)
	go func() {
		h, busy, err := lockWithin(ctx, s, id, timeout)
		got <- result{h, busy, err}
	}()
	var r result
	select {
	case r = <-got:
	case <-watched:
		// A signal: the cancelled wait withdraws this waiter's key, which
		// takes a round trip, or up to --dial-timeout if etcd does not
		// answer; give it quitGrace, no more (found by review).
		select {
		case r = <-got:
		case <-time.After(quitGrace):
		}
	}
	close(stop)
	<-watched
	h, busy, err := r.h, r.busy, r.err
	if sig != nil {
		if h != nil {
			releaseWithin(h, nil, quitGrace)
		}
		if o.verbose {
			fmt.Fprintf(stderr, "lockdir: %v received while waiting for lock %d; gave up\n", sig, id)
		}
		return nil, signalStatus(sig)
	}
	switch {
	case err == nil && h != nil:
		if o.verbose {
			fmt.Fprintf(stderr, "lockdir: getting lock %d took %.6f seconds\n", id, time.Since(start).Seconds())
		}
		return h, nil
	case err == nil, busy:
		if o.verbose {
			if timeout > 0 {
				fmt.Fprintf(stderr, "lockdir: timed out after %v waiting for lock %d, held%s\n", timeout, id, describeClusterHolders(s, id))
			} else {
				fmt.Fprintf(stderr, "lockdir: lock %d is held%s\n", id, describeClusterHolders(s, id))
			}
		}
		return nil, exitStatus(o.conflict)
	}
	if errors.Is(err, lock.ErrCorrupt) {
		// etcd answered: the space is gone or another, not out of reach
		// (review 15).
		return nil, spaceChangeError(fmt.Errorf("lock: waiting for lock %d on %s: %w", id, s.Where(), err))
	}
	code := exitFailure
	if errors.Is(err, context.DeadlineExceeded) {
		code = exitDir // the cluster cannot be reached, as when opening
	}
	hint := "check that the cluster is up and reachable"
	if code == exitDir {
		hint = tlsOrDown
	}
	return nil, errorf(code, hint, "lock: waiting for lock %d on %s: %w", id, s.Where(), err)
}

// tokenEnv is the environment variable in which lock on a cluster gives the
// command the fencing token of its hold.
const tokenEnv = "LOCKDIR_FENCING_TOKEN"

// withToken returns env with tokenEnv set to token, in place of one that
// an outer lockdir set: a command that takes two locks in turn sees its
// inner one's.
func withToken(env []string, token int64) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, tokenEnv+"=") })
	return append(out, tokenEnv+"="+strconv.FormatInt(token, 10))
}

// lockWithin takes lock id, waiting for a holder for at most timeout:
// negative is for ever, zero not at all. busy reports a lock still held
// when the wait ended. The timeout bounds only the wait for a holder, not
// the round trips that take a free lock, as flock(1)'s -w bounds only the
// wait in flock(2): a free lock is taken whatever -w says, however far
// away the cluster (found by review: -w 0.05 gave up on a free lock).
func lockWithin(ctx context.Context, s Space, id uint32, timeout time.Duration) (h Held, busy bool, err error) {
	if timeout < 0 {
		h, err = s.Lock(ctx, id, true)
		return h, false, err
	}
	if h, err = s.Lock(ctx, id, false); err != nil || h != nil || timeout == 0 {
		return h, err == nil && h == nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h, err = s.Lock(wctx, id, true)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && wctx.Err() != nil {
		return tryOnce(ctx, s, id)
	}
	return h, false, err
}

// tryOnce tries lock id once more when -w runs out. A timed-out wait says
// nothing of why: a lock still held, or a cluster that stopped answering,
// which would even leave a free lock untaken; only an answer now makes it
// "busy" (found by review: exit 1, "held by another process", with etcd
// out of reach). The try is bounded by the cluster's own request timeout,
// --dial-timeout, as every round trip is, never by less (found by review:
// half a second made a slow but answering cluster exit 3); a signal still
// cuts it short. A lock free at the deadline is taken.
func tryOnce(ctx context.Context, s Space, id uint32) (h Held, busy bool, err error) {
	h, err = s.Lock(ctx, id, false)
	return h, err == nil && h == nil, err
}

// quitGrace is how long lockdir, ending on a signal, gives etcd to take
// back its place in a lock's queue or its hold: a round trip or two
// normally, so that the next waiter need not wait out the TTL; with etcd
// out of reach, the key goes with the lease, within the TTL.
const quitGrace = 500 * time.Millisecond

// quitSignals are the signals that end lockdir's release of a lock, those
// of lockSignals that ask a process to end, and that lockdir catches (it
// was not started with them ignored). They are caught already, so a Notify
// of them costs no round trip to the Go runtime. SIGQUIT and SIGTERM are
// never ignored at start for Go, so the list is never empty (which Notify
// would take for every signal).
func quitSignals() []os.Signal {
	return caught([]os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM})
}

// releaseWithin unlocks h and closes s, either of which may be nil, unless
// SIGHUP, SIGINT, SIGQUIT or SIGTERM comes first, or limit passes if it is
// not 0: with etcd out of reach, each waits for up to --dial-timeout, and
// neither Ctrl-C nor a service manager's SIGTERM should wait for that once
// the command is done (found by review). lockdir then exits with the
// status it has, and its key goes with its lease, within the TTL.
func releaseWithin(h Held, s Space, limit time.Duration) {
	// A channel of its own: forwardSignals' goroutine still reads sigs,
	// and drops what it reads once the command is gone. The signals are
	// caught already, so this Notify costs no round trip to the runtime.
	quit := make(chan os.Signal, 1)
	signal.Notify(quit, quitSignals()...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if h != nil {
			h.Unlock()
		}
		if s != nil {
			s.Close()
		}
	}()
	var expired <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-done:
	case <-quit:
	case <-expired:
	}
}

// runChildHeld is runChild for a lock that can be lost: when h's Lost
// closes before the command exits, it says so, sends SIGTERM to the
// command's process group, and returns exitLost once the command is gone.
//
// Once the command has ended by itself, it asks the cluster whether the
// hold still stood (Check), unless a signal on quit says to stop: then a
// frozen cluster must not keep lockdir waiting, and the signal is noted
// on quit for the release that follows.
func runChildHeld(path string, argv []string, sigs chan os.Signal, id uint32, h Held, quit chan os.Signal) error {
	// A hold lost already (a waiter paused past its TTL) must not start
	// the command at all (found by review).
	select {
	case <-h.Lost():
		fmt.Fprintf(stderr, "lockdir: lock %d lost before %s could start: its etcd lease ended; another process may hold it now; not running %s\n", id, argv[0], argv[0])
		return exitStatus(exitLost)
	default:
	}
	// The hold's fencing token, for a command whose storage can reject
	// the writes of a holder that lost the lock (docs/etcd.md,
	// "Fencing").
	c, err := startChild(path, argv, withToken(os.Environ(), h.Token()), nil)
	if err != nil {
		return err
	}
	stopForwarding := forwardSignals(c.pid, sigs)
	var mu sync.Mutex // guards exited and lost against a kill after the wait
	exited, lost := false, false
	done := make(chan struct{})
	go func() {
		select {
		case <-h.Lost():
		case <-done:
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if exited {
			return
		}
		lost = true
		fmt.Fprintf(stderr, "lockdir: lock %d lost: its etcd lease ended (expired, revoked, or etcd out of reach for longer than the TTL); another process may hold it now; sending SIGTERM to %s\n", id, argv[0])
		syscall.Kill(-c.pid, syscall.SIGTERM)
	}()
	ws, err := c.wait()
	mu.Lock()
	exited = true
	wasLost := lost
	mu.Unlock()
	close(done)
	stopForwarding()
	c.reclaimTerminal()
	if err != nil {
		return fmt.Errorf("lock: waiting for %s: %w", argv[0], err)
	}
	if wasLost {
		return exitStatus(exitLost)
	}
	// The command's exit may come before Lost closes: a lockdir stopped
	// past its TTL (kill -STOP, Ctrl-Z) whose command ended meanwhile sees
	// the exit first, and the client notices the ended lease up to a
	// second or more later. So ask the cluster before reporting the
	// command's status (review 10c: such a lockdir exited 0, silent,
	// after another process had held the lock while its command ran).
	checked := make(chan error, 1)
	go func() { checked <- h.Check(context.Background()) }()
	select {
	case err := <-checked:
		if err != nil {
			fmt.Fprintf(stderr, "lockdir: lock %d not confirmed held until %s ended: %v; another process may have held it meanwhile\n", id, argv[0], err)
			return exitStatus(exitLost)
		}
	case s := <-quit:
		quit <- s // for runClusterLock's release, which counts it
	}
	return childStatus(ws)
}
