package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lockdir/lockdir/lock"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Locker is one lock of a Manager. It implements lock.Locker, with TryLock,
// LockContext, Token and Lost besides. A Locker is safe for concurrent use:
// like a sync.Mutex, it excludes the goroutines that share it as well as
// every other Locker for its ID, in this process or another, on this host
// or another.
//
// A lock is not recursive: a goroutine that locks a lock it already holds
// blocks forever. Unlock may be called from another goroutine than Lock.
type Locker struct {
	m  *Manager
	st *lockState
}

var _ lock.Locker = (*Locker)(nil)

// ID returns the lock's ID.
func (l *Locker) ID() uint32 { return l.st.id }

// Lock blocks until it holds the lock. While etcd cannot be reached it
// keeps trying, with a backoff up to a second, as a wait for the lock. It
// has no error result, so it panics if the Manager or its etcd client is
// closed, the lock space is gone, or etcd refuses the request outright (a
// lease TTL above its largest, no permission): no retry would change
// those.
func (l *Locker) Lock() {
	if err := l.lock(context.Background()); err != nil {
		panic(err)
	}
}

// LockContext blocks until it holds the lock or ctx is done. When ctx is
// done first it returns an error matching ctx.Err(), holding nothing. Unlike
// Lock, it returns errors (such as lock.ErrClosed, or lock.ErrCorrupt if
// the lock space was deleted or made again since New) instead of
// panicking. While etcd cannot be reached it keeps trying until ctx is
// done.
func (l *Locker) LockContext(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.lock(ctx)
}

// TryLock takes the lock if it is free and reports whether it did. It
// waits for etcd (two round trips when the lock is held), but never for
// the lock. It panics if the Manager is closed, the lock space is gone, or
// etcd does not answer within the timeout (WithTimeout).
func (l *Locker) TryLock() bool {
	st := l.st
	select {
	case st.sem <- struct{}{}:
	default:
		return false
	}
	h, err := l.m.acquire(l.m.ctx, st.id, false)
	if err != nil || h == nil {
		<-st.sem
		if err != nil {
			panic(err)
		}
		return false
	}
	st.hold.Store(h)
	l.m.pin(st)
	return true
}

// lock takes the in-process mutex, then the etcd mutex, retrying the
// latter on etcd errors until ctx is done (or forever, if it cannot be).
func (l *Locker) lock(ctx context.Context) error {
	st := l.st
	m := l.m
	// The wait ends when ctx is done or the Manager is closed.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()
	select {
	case st.sem <- struct{}{}:
	case <-ctx.Done():
		return l.doneErr(ctx, nil)
	}
	var last error
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		h, err := m.acquire(ctx, st.id, true)
		if err == nil {
			st.hold.Store(h)
			m.pin(st)
			return nil
		}
		if ctx.Err() != nil || m.closed.Load() || errors.Is(err, lock.ErrCorrupt) || refused(err) {
			<-st.sem
			return l.doneErr(ctx, err)
		}
		// A client closed under the Manager (New does not own it) answers
		// every request with its own cancellation, for ever (review 10c:
		// Lock never returned).
		if m.cli.Ctx().Err() != nil {
			<-st.sem
			return fmt.Errorf("lock %d in %s: the etcd client was closed: %w", st.id, m.k.p, err)
		}
		last = err
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			<-st.sem
			return l.doneErr(ctx, last)
		}
	}
}

// refused reports whether err is etcd's refusal of a request that no
// retry changes: a lease TTL above its largest, a request too large, or
// one this client has no permission for (found by review: LockContext
// retried a refused lease grant until its context ended, and Lock for
// ever). It names those answers one by one: a code alone would not do, as
// etcd gives OutOfRange to a watch resumed past a compaction too, which a
// new watch cures (TestWaiterSurvivesCompaction). Everything else is
// retried: unavailability, timeouts, a lost lease, an expired auth token.
func refused(err error) bool {
	for _, r := range []error{rpctypes.ErrLeaseTTLTooLarge, rpctypes.ErrRequestTooLarge, rpctypes.ErrPermissionDenied} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// doneErr is the error of a lock attempt that ended with err, or because
// its context was done.
func (l *Locker) doneErr(ctx context.Context, err error) error {
	if l.m.closed.Load() {
		return fmt.Errorf("lock %d in %s: %w", l.st.id, l.m.k.p, lock.ErrClosed)
	}
	if cerr := ctx.Err(); cerr != nil {
		if err != nil && !errors.Is(err, cerr) {
			return fmt.Errorf("lock %d in %s: %w (last etcd error: %v)", l.st.id, l.m.k.p, cerr, err)
		}
		return cerr
	}
	return err
}

// Unlock releases the lock. It panics if the lock is not locked.
//
// If the lock was lost (Lost is closed), Unlock still returns at once and
// leaves the Locker unlocked: the holder key is gone, or goes with the
// lease within the TTL. If etcd cannot be reached, Unlock does not panic:
// it waits for the delete for at most the request timeout (WithTimeout),
// then returns and retries it in the background while the session lives,
// so the lock is free in etcd once etcd answers (or once the lease
// expires), and the Manager's other locks stay held. Until then a Lock of
// the same ID through this Manager waits.
func (l *Locker) Unlock() {
	st := l.st
	h := st.hold.Swap(nil)
	if h == nil {
		panic(fmt.Sprintf("etcdlock: Unlock of unlocked lock %d in %s", st.id, l.m.k.p))
	}
	l.m.release(h, func() {
		l.m.unpin(st)
		<-st.sem
	})
}

// Token returns the fencing token of the current hold of the lock: the etcd
// revision at which its holder key was made. Tokens of successive holds of
// one ID, by any process in the cluster, strictly increase, so a storage
// service that remembers the largest token it has seen can refuse a write
// from a holder that has lost the lock (docs/etcd.md). Token returns 0 if
// the lock is not held through this Manager.
func (l *Locker) Token() int64 {
	if h := l.st.hold.Load(); h != nil {
		return h.rev
	}
	return 0
}

// Lost returns a channel that is closed when the current hold of the lock is
// lost before Unlock: the session lease expired or was revoked, no
// keepalive was answered for a TTL (counted from the last answer, or from
// the grant before the first), or the Manager was closed. Another process
// may hold the lock from then on. If the lock is not held through this
// Manager, Lost returns a closed channel.
func (l *Locker) Lost() <-chan struct{} {
	if h := l.st.hold.Load(); h != nil {
		return h.sess.done()
	}
	return closedChan
}

// ErrLost says that a hold of a lock no longer stands: its holder key is
// gone, with the session lease that expired or was revoked, and another
// process may hold the lock. Check returns it, wrapped.
var ErrLost = errors.New("lock lost")

// Check asks etcd whether the current hold of the lock still stands: its
// holder key exists, made at the hold's revision (Token). It returns nil
// if so, an error matching ErrLost if not, or etcd's error if etcd does
// not answer within the timeout (WithTimeout). Once the hold's session has
// ended (Lost is closed, or its keepalive deadline has passed), Check
// returns ErrLost without asking etcd.
//
// Lost closes only once this process notices that the lease ended: etcd
// may have ended it earlier (a revoke, or an expiry that the keepalive
// answers have not told yet), and etcd starts the TTL of a keepalive when
// it receives it, this process when it receives the answer. A holder that
// must know, before it reports a job done, that nobody else held the lock
// meanwhile calls Check (review 10c: lockdir lock reported success after
// its lock had been taken by another process).
func (l *Locker) Check(ctx context.Context) error {
	h := l.st.hold.Load()
	if h == nil {
		return fmt.Errorf("lock %d in %s: not held through this Manager: %w", l.st.id, l.m.k.p, ErrLost)
	}
	if !h.sess.alive() {
		return fmt.Errorf("lock %d in %s: its session ended (the lease expired or was revoked, or no keepalive was answered for a TTL); another process may have held it: %w", l.st.id, l.m.k.p, ErrLost)
	}
	ctx, cancel := context.WithTimeout(ctx, l.m.opts.timeout)
	defer cancel()
	resp, err := l.m.cli.Get(ctx, h.key)
	if err != nil {
		return l.m.etcdErr("check", h.key, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != h.rev {
		return fmt.Errorf("lock %d in %s: its holder key is gone (the session lease expired or was revoked); another process may have held it: %w", l.st.id, l.m.k.p, ErrLost)
	}
	return nil
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Free marks the lock unallocated, so that AllocateLock may return its ID
// again. It fails with an error matching lock.ErrNotAllocated if the lock is
// not allocated, and lock.ErrCorrupt if the lock space was deleted or made
// again since New. The Locker stays usable: Lock and Unlock work on a freed
// lock without allocating it again.
func (l *Locker) Free() error { return l.m.free(l.st.id) }
