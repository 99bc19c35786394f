package filelock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/lockdir/lockdir/lock"
)

var errClosedManager = lock.ErrClosed

// Locker is one lock of a Manager. It implements lock.Locker, with TryLock
// and LockContext besides, and it is a readers-writer lock: RLock,
// TryRLock and RLockContext take it shared, as flock(1) -s does.
//
// A Locker is safe for concurrent use. Between the goroutines of a process
// it behaves like a sync.RWMutex, whether they share one Locker or use
// several for its ID from one Manager: any number of readers or one
// writer, and a goroutine's RLock while a writer waits queues behind that
// writer. Between processes, Managers and flock(1) on its LockPath it
// behaves like flock(2): LOCK_EX for Lock, LOCK_SH for RLock.
//
// A lock is not recursive: a goroutine that locks a lock it already holds,
// in either mode, may block forever. Unlock and RUnlock may be called from
// another goroutine than the one that locked.
type Locker struct {
	m  *Manager
	st *lockState
}

var _ lock.Locker = (*Locker)(nil)

// ID returns the lock's ID.
func (l *Locker) ID() uint32 { return l.st.id }

// Lock blocks until it holds the lock exclusively. It has no error result,
// so it panics if the lock file cannot be opened or locked, or if the
// Manager is closed. If the process is out of file descriptors it waits
// for one to be freed.
func (l *Locker) Lock() {
	if err := l.acquire(true, nil); err != nil {
		panic(err)
	}
}

// RLock blocks until it holds the lock shared. It panics where Lock does.
func (l *Locker) RLock() {
	if err := l.acquire(false, nil); err != nil {
		panic(err)
	}
}

// LockContext blocks until it holds the lock exclusively or ctx is done.
// When ctx is done first it returns ctx.Err() at once, holding nothing.
// Unlike Lock, it returns errors (such as lock.ErrClosed) instead of
// panicking.
//
// It waits in the kernel, as Lock does, so it costs no CPU while it waits
// and takes the lock as soon as its holder releases it. Since a flock(2)
// wait cannot be interrupted, a context that can be cancelled is waited
// for by a goroutine of its own (see the package Caveats).
func (l *Locker) LockContext(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.acquire(true, ctx)
}

// RLockContext is LockContext for the shared lock.
func (l *Locker) RLockContext(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.acquire(false, ctx)
}

// TryLock takes the lock exclusively if that needs no wait, and reports
// whether it did. (With WithSharedGroup, opening a lock file that another
// member created a moment ago may wait up to 100 ms for its mode to be
// set.) It panics if the Manager is closed or the lock file cannot be
// opened, and returns false if the process is out of file descriptors.
func (l *Locker) TryLock() bool { return l.try(true) }

// TryRLock takes the lock shared if that needs no wait, and reports
// whether it did. It fails while a goroutine of the process holds, takes
// or waits for the lock exclusively, and while another process holds it
// exclusively. It panics where TryLock does.
func (l *Locker) TryRLock() bool { return l.try(false) }

func (l *Locker) try(write bool) bool {
	st := l.st
	if l.m.closed.Load() {
		panic(l.closedErr())
	}
	st.mu.Lock()
	if !write && st.phase == phaseShared && st.head == nil {
		st.readers++
		st.mu.Unlock()
		return true
	}
	if st.phase != phaseIdle || st.head != nil {
		st.mu.Unlock()
		return false
	}
	st.phase = turnPhase(write)
	st.mu.Unlock()
	err := l.flockTurn(how(write)|lockNB, dontWait)
	if err == nil {
		l.taken(write)
		return true
	}
	l.giveUp()
	if isWouldBlock(err) || ranOutOfFiles(err) {
		return false
	}
	panic(err)
}

// acquire takes the lock in the given mode. ctx is nil for Lock and RLock;
// if ctx can never be done, the wait cannot be abandoned, and the caller
// waits in flock(2) itself.
func (l *Locker) acquire(write bool, ctx context.Context) error {
	st := l.st
	if l.m.closed.Load() {
		return l.closedErr()
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	st.mu.Lock()
	switch {
	case st.phase == phaseIdle && st.head == nil:
		st.phase = turnPhase(write)
		st.mu.Unlock()
		return l.take(write, nil, ctx, done)
	case !write && st.phase == phaseShared && st.head == nil:
		st.readers++
		st.mu.Unlock()
		return nil
	}
	w := getWaiter(write)
	st.push(w)
	st.mu.Unlock()
	turn, err := l.awaitGrant(w, ctx, done)
	if !turn {
		return err
	}
	w.got = grantNone
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			putWaiter(w)
			l.giveUp()
			return err
		}
	}
	return l.take(write, w, ctx, done)
}

// awaitGrant waits for w's grant (await) and, for every grant but the
// turn, ends the wait and returns w to the pool: with nil once w holds the
// lock, with the kernel waiter's error, or with ctx's. turn reports that
// w was given the turn instead, and is still the caller's. A queued
// caller (lockSlow) and the owner of a kernel wait (waitInKernel) share
// it, so that a waiter is recycled in one place.
func (l *Locker) awaitGrant(w *waiter, ctx context.Context, done <-chan struct{}) (turn bool, err error) {
	if err := l.await(w, ctx, done); err != nil {
		return false, err
	}
	switch g := w.got; g {
	case grantHeld:
		putWaiter(w)
		return false, nil
	case grantErr:
		err := w.err
		putWaiter(w)
		return false, err
	case grantTurn:
		return true, nil
	default:
		panic(fmt.Sprintf("filelock: waiter of lock %d granted %d", l.st.id, g))
	}
}

// await waits for w's grant, or for done. When done comes first and w has
// no grant yet, it takes w out of the queue (or out of the kernel waiter's
// hands), recycles it and returns ctx.Err(). A grant that raced with done
// is kept, as if done had not been noticed.
func (l *Locker) await(w *waiter, ctx context.Context, done <-chan struct{}) error {
	if done == nil {
		// A plain receive: cheaper than a select, which a contended
		// Lock would pay on every wait.
		<-w.ch
		return nil
	}
	select {
	case <-w.ch:
		return nil
	case <-done:
	}
	st := l.st
	st.mu.Lock()
	if w.got == grantNone {
		if st.owner == w {
			st.owner = nil
		} else {
			st.remove(w)
			// Readers queued behind a cancelled writer may be able
			// to go in now.
			st.dispatch()
		}
		st.mu.Unlock()
		putWaiter(w)
		return ctx.Err()
	}
	st.mu.Unlock()
	<-w.ch
	return nil
}

// take takes the flock in the caller's turn. w is the caller's waiter, if
// it queued, reused for the kernel wait.
func (l *Locker) take(write bool, w *waiter, ctx context.Context, done <-chan struct{}) error {
	if done == nil {
		err := l.flockTurn(how(write), waitForever)
		putWaiter(w)
		if err != nil {
			l.giveUp()
			return err
		}
		l.taken(write)
		return nil
	}
	err := l.flockTurn(how(write)|lockNB, func() bool { return ctx.Err() == nil })
	if err == nil {
		putWaiter(w)
		l.taken(write)
		return nil
	}
	if !isWouldBlock(err) || ctx.Err() != nil {
		putWaiter(w)
		l.giveUp()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if w == nil {
		w = getWaiter(write)
	}
	return l.waitInKernel(how(write), w, ctx, done)
}

// taken records that the turn's owner now holds the flock.
func (l *Locker) taken(write bool) {
	st := l.st
	if write {
		st.held.Store(true)
		return
	}
	st.mu.Lock()
	st.phase = phaseShared
	st.readers = 1
	st.admitReaders()
	st.mu.Unlock()
}

// giveUp ends a turn that took nothing.
func (l *Locker) giveUp() {
	st := l.st
	st.mu.Lock()
	st.phase = phaseIdle
	st.dispatch()
	st.mu.Unlock()
	l.afterIdle()
}

// afterIdle closes the descriptor if the Manager was closed: Close skipped
// it because the state was busy (or, if the state is idle now, already
// closed it).
func (l *Locker) afterIdle() {
	if l.m.closed.Load() {
		l.m.cache.dropIdle(l.st)
	}
}

func turnPhase(write bool) phase {
	if write {
		return phaseWriter
	}
	return phaseTakingShared
}

func how(write bool) int {
	if write {
		return lockEx
	}
	return lockSh
}

var (
	waitForever = func() bool { return true }
	dontWait    = func() bool { return false }
)

// ranOutOfFiles reports whether err, however deeply wrapped, is EMFILE or
// ENFILE.
func ranOutOfFiles(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if isTooManyFiles(err) {
			return true
		}
	}
	return false
}

// flockTurn flocks the lock file with how, opening it first if it is not
// open. The caller owns the state's turn.
//
// A descriptor kept from an earlier lock is checked, once it is due (see
// recheck.go), to be still the file that the lock's name leads to; if a
// cleaner deleted or replaced the file meanwhile, flockTurn lets go of it
// and locks the file by name.
func (l *Locker) flockTurn(how int, wait func() bool) error {
	st := l.st
	c := &l.m.cache
	if l.m.closed.Load() {
		return l.closedErr()
	}
	// After a stale descriptor, the file opened in its place is checked
	// too: the cleaner may still be at work.
	again := false
	for {
		kept := st.fd >= 0
		if !kept {
			if err := l.m.openFD(st, wait); err != nil {
				return err
			}
		}
		if !st.ref.Load() {
			st.ref.Store(true)
		}
		waited, err := flockWaited(st.fd, how)
		if err != nil {
			if isWouldBlock(err) {
				return err
			}
			return l.pathErr("flock", err)
		}
		// A flock that waited may have waited on a file that was deleted
		// meanwhile (by a cleaner that took the lock to do it, say): it
		// is always checked, at a cost next to the wait's.
		if !waited && !again && (!kept || !c.recheckDue(st)) {
			return nil
		}
		err = c.recheck(st)
		if err == nil {
			return nil
		}
		flock(st.fd, lockUn)
		if err != errStale {
			return l.pathErr("stat", err)
		}
		c.drop(st)
		again = true
	}
}

// flockWaited is flock(2) with how, reporting whether a blocking flock had
// to wait: it tries without waiting first, which costs nothing more when
// the lock is free (one call either way).
func flockWaited(fd, how int) (waited bool, err error) {
	if how&lockNB != 0 {
		return false, flock(fd, how)
	}
	if err := flock(fd, how|lockNB); !isWouldBlock(err) {
		return false, err
	}
	return true, flock(fd, how)
}

func (l *Locker) closedErr() error {
	return fmt.Errorf("lock %d in %s: %w", l.st.id, l.m.dir, lock.ErrClosed)
}

func (l *Locker) pathErr(op string, err error) error {
	return &fs.PathError{Op: op, Path: l.m.LockPath(l.st.id), Err: err}
}

// Unlock releases the exclusive lock. It panics if the lock is not locked
// exclusively.
func (l *Locker) Unlock() {
	st := l.st
	if !st.held.CompareAndSwap(true, false) {
		panic(fmt.Sprintf("filelock: Unlock of unlocked lock %d in %s", st.id, l.m.dir))
	}
	if err := l.unlockKernel(); err != nil {
		panic(err)
	}
}

// RUnlock releases one hold of the shared lock; the last one releases the
// flock. It panics if the lock is not locked shared.
func (l *Locker) RUnlock() {
	st := l.st
	st.mu.Lock()
	if st.phase != phaseShared || st.readers <= 0 {
		st.mu.Unlock()
		panic(fmt.Sprintf("filelock: RUnlock of lock %d in %s, which is not read-locked", st.id, l.m.dir))
	}
	st.readers--
	if st.readers > 0 {
		st.mu.Unlock()
		return
	}
	st.phase = phaseReleasingShared
	st.mu.Unlock()
	if err := l.unlockKernel(); err != nil {
		panic(err)
	}
}

// unlockKernel releases the flock in the caller's turn, then lets the
// queue in.
func (l *Locker) unlockKernel() error {
	st := l.st
	err := flock(st.fd, lockUn)
	st.mu.Lock()
	st.phase = phaseIdle
	st.dispatch()
	st.mu.Unlock()
	l.afterIdle()
	if err != nil {
		return l.pathErr("unlock", err)
	}
	return nil
}

// Free marks the lock unallocated, so that AllocateLock may return its ID
// again. It fails with an error matching lock.ErrNotAllocated if the lock is
// not allocated. The Locker stays usable: Lock and Unlock work on a freed
// lock without allocating it again.
func (l *Locker) Free() error { return l.m.free(l.st.id) }
