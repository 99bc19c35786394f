package filelock

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lockdir/lockdir/lock"
)

var errClosedManager = lock.ErrClosed

// lockState is the in-process side of one lock ID, shared by every Locker
// for that ID from one Manager.
//
// sem is the in-process mutex. flock alone cannot be: a flock lock belongs
// to an open file description, so two goroutines locking through the same
// descriptor would both succeed. A goroutine first takes sem, then flocks the
// file, so at most one goroutine per Manager and ID waits in flock(2) and
// the rest wait, parked, on the channel, without holding an OS thread.
type lockState struct {
	sem   chan struct{} // full while a goroutine holds or is taking the lock
	held  atomic.Bool   // the flock is held; Unlock clears it first
	ref   atomic.Bool   // used since the cache's clock hand last passed
	fd    int           // lock file descriptor, or -1; guarded by sem
	slot  int           // index in fdCache.open, or -1; guarded by fdCache.mu
	opens uint8         // how often fdCache opened fd (at most 2); guarded by fdCache.mu
	id    uint32
}

func newLockState(id uint32) *lockState {
	return &lockState{sem: make(chan struct{}, 1), fd: -1, slot: -1, id: id}
}

// tryAcquire takes the in-process mutex if it is free.
func (st *lockState) tryAcquire() bool {
	select {
	case st.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func (st *lockState) release() { <-st.sem }

// Locker is one lock of a Manager. It implements lock.Locker, with TryLock
// and LockContext besides. A Locker is safe for concurrent use: like a
// sync.Mutex, it excludes the goroutines that share it as well as every
// other Locker for its ID, in this process or another, and flock(1) on its
// LockPath.
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

// Lock blocks until it holds the lock. It has no error result, so it panics
// if the lock file cannot be opened or locked, or if the Manager is closed.
// If the process is out of file descriptors it waits for one to be freed.
func (l *Locker) Lock() {
	st := l.st
	st.sem <- struct{}{}
	if err := l.flockHeld(lockEx, waitForever); err != nil {
		l.release()
		panic(err)
	}
}

// TryLock takes the lock if it is free and reports whether it did. It never
// waits for the lock. (With WithSharedGroup, opening a lock file that
// another member created a moment ago may wait up to 100 ms for its mode
// to be set.) It panics if the Manager is closed or the lock file cannot be
// opened, and returns false if the process is out of file descriptors.
func (l *Locker) TryLock() bool {
	st := l.st
	if !st.tryAcquire() {
		return false
	}
	err := l.flockHeld(lockEx|lockNB, dontWait)
	if err == nil {
		return true
	}
	l.release()
	if isWouldBlock(err) || isTooManyFilesErr(err) {
		return false
	}
	panic(err)
}

// LockContext blocks until it holds the lock or ctx is done. When ctx is
// done first it returns ctx.Err() at once, holding nothing. Unlike Lock, it
// returns errors (such as lock.ErrClosed) instead of panicking.
//
// A flock(2) wait cannot be interrupted, so unless ctx can never be done,
// LockContext waits by polling: it retries a non-blocking flock with a
// backoff that grows to 2 ms. It may therefore take up to 2 ms longer than
// Lock to notice that another process released the lock.
func (l *Locker) LockContext(ctx context.Context) error {
	st := l.st
	if err := ctx.Err(); err != nil {
		return err
	}
	done := ctx.Done()
	if done == nil {
		// Nothing can cancel the wait, so wait in the kernel, as Lock
		// does, but report errors rather than panic.
		st.sem <- struct{}{}
		err := l.flockHeld(lockEx, waitForever)
		if err != nil {
			l.release()
		}
		return err
	}
	select {
	case st.sem <- struct{}{}:
	case <-done:
		return ctx.Err()
	}
	wait := func() bool { return ctx.Err() == nil }
	err := l.flockHeld(lockEx|lockNB, wait)
	if err == nil || !isWouldBlock(err) {
		if err != nil {
			l.release()
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return err
	}
	t := time.NewTimer(pollMin)
	defer t.Stop()
	for delay := pollMin; ; delay = min(2*delay, pollMax) {
		select {
		case <-done:
			l.release()
			return ctx.Err()
		case <-t.C:
		}
		err := flock(st.fd, lockEx|lockNB)
		if err == nil {
			st.held.Store(true)
			return nil
		}
		if !isWouldBlock(err) {
			l.release()
			return l.pathErr("flock", err)
		}
		t.Reset(delay)
	}
}

const (
	pollMin = 20 * time.Microsecond
	pollMax = 2 * time.Millisecond
)

var (
	waitForever = func() bool { return true }
	dontWait    = func() bool { return false }
)

func isTooManyFilesErr(err error) bool {
	if pe, ok := err.(*fs.PathError); ok {
		return isTooManyFiles(pe.Err)
	}
	return false
}

// flockHeld flocks the lock file with how, opening it first if it is not
// open. st.sem must be held. On success the lock is marked held.
func (l *Locker) flockHeld(how int, wait func() bool) error {
	st := l.st
	if l.m.closed.Load() {
		return fmt.Errorf("lock %d in %s: %w", st.id, l.m.dir, lock.ErrClosed)
	}
	if st.fd < 0 {
		if err := l.m.openFD(st, wait); err != nil {
			return err
		}
	}
	if !st.ref.Load() {
		st.ref.Store(true)
	}
	if err := flock(st.fd, how); err != nil {
		if isWouldBlock(err) {
			return err
		}
		return l.pathErr("flock", err)
	}
	st.held.Store(true)
	return nil
}

func (l *Locker) pathErr(op string, err error) error {
	return &fs.PathError{Op: op, Path: filepath.Join(l.m.dir, locksName, strconv.FormatUint(uint64(l.st.id), 10)), Err: err}
}

// release releases the in-process mutex. If the Manager was closed
// meanwhile, Close skipped this lock's descriptor because the mutex was
// taken, so release closes it (or Close, seeing the mutex free after the
// release, already did).
func (l *Locker) release() {
	l.st.release()
	if l.m.closed.Load() {
		l.m.cache.dropIdle(l.st)
	}
}

// Unlock releases the lock. It panics if the lock is not locked.
func (l *Locker) Unlock() {
	st := l.st
	if !st.held.CompareAndSwap(true, false) {
		panic(fmt.Sprintf("filelock: Unlock of unlocked lock %d in %s", st.id, l.m.dir))
	}
	err := flock(st.fd, lockUn)
	l.release()
	if err != nil {
		panic(l.pathErr("unlock", err))
	}
}

// Free marks the lock unallocated, so that AllocateLock may return its ID
// again. It fails with an error matching lock.ErrNotAllocated if the lock is
// not allocated. The Locker stays usable: Lock and Unlock work on a freed
// lock without allocating it again.
func (l *Locker) Free() error { return l.m.free(l.st.id) }
