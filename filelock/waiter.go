package filelock

import (
	"context"
	"fmt"
)

// A flock(2) wait cannot be interrupted: the Go runtime restarts it after
// its own signals, and nothing else ends it but the lock being released.
// So a caller whose context can be cancelled never sits in flock(2)
// itself. When its non-blocking attempt finds the lock busy, it starts a
// kernel waiter, a goroutine that blocks in flock(2) on the state's
// descriptor, and waits for it on a channel, which it can abandon the
// moment the context is done. There is at most one kernel waiter per
// state, because it runs in the turn of the caller that started it.
//
// When flock returns, the kernel waiter gives the lock to its caller if
// that caller still waits. If it walked away, the waiter hands the lock to
// the next caller in the queue that can use it as taken (a writer for
// LOCK_EX, the readers at the head for LOCK_SH) or, if there is none,
// releases it and lets the queue start afresh.

// waitInKernel waits for the lock in the kernel on behalf of w, whose
// caller owns the turn and found the lock busy with a non-blocking
// attempt. It returns nil once w holds the lock, or ctx.Err() at once when
// ctx is done first, holding nothing.
func (l *Locker) waitInKernel(how int, w *waiter, ctx context.Context, done <-chan struct{}) error {
	st := l.st
	st.mu.Lock()
	st.owner = w
	st.mu.Unlock()
	go l.kernelWait(how)
	turn, err := l.awaitGrant(w, ctx, done)
	if turn {
		// The turn is already w's caller's: nobody may give it again.
		panic(fmt.Sprintf("filelock: kernel waiter of lock %d granted the turn", st.id))
	}
	return err
}

// kernelWait is the kernel waiter: it blocks in flock(2) with how, then
// gives the lock away or releases it.
func (l *Locker) kernelWait(how int) {
	st := l.st
	err := l.flockTurn(how, waitForever)
	if err == nil && l.m.closed.Load() {
		// The Manager was closed while we waited. Nothing is taken
		// through a closed Manager, so let go at once; the queue
		// learns of the close when it takes its own turn.
		flock(st.fd, lockUn)
		err = l.closedErr()
	}
	st.mu.Lock()
	w := st.owner
	st.owner = nil
	if err != nil {
		st.phase = phaseIdle
		if w != nil {
			w.err = err
			w.give(grantErr)
		}
		st.dispatch()
		st.mu.Unlock()
		l.afterIdle()
		return
	}
	if how&lockEx != 0 {
		if w == nil && st.head != nil && st.head.write {
			w = st.head
			st.remove(w)
		}
		if w != nil {
			st.held.Store(true)
			w.give(grantHeld)
			st.mu.Unlock()
			return
		}
	} else {
		st.phase = phaseShared
		if w != nil {
			st.readers++
			w.give(grantHeld)
		}
		st.admitReaders()
		if st.readers > 0 {
			st.mu.Unlock()
			return
		}
		st.phase = phaseReleasingShared
	}
	// Nobody wants the lock any more.
	st.mu.Unlock()
	l.unlockKernel()
}
