package filelock

import (
	"sync"
	"sync/atomic"
)

// lockState is the in-process side of one lock ID, shared by every Locker
// for that ID from one Manager: a readers-writer lock between goroutines,
// layered over the flock of one descriptor.
//
// The in-process layer is needed because a flock lock belongs to an open
// file description: two goroutines locking through the same descriptor
// would both succeed. It keeps three rules:
//
//   - Exactly one goroutine at a time is inside flock(2) (or opening the
//     descriptor) for the state. That goroutine owns the state's turn,
//     which the phases phaseWriter, phaseTakingShared and
//     phaseReleasingShared name; everyone else who needs the kernel queues,
//     parked on a channel, without holding an OS thread.
//   - The descriptor holds LOCK_SH for all readers of the process at once:
//     the first reader takes it, later readers only count, and the last
//     reader's RUnlock releases it. A held lock is never converted between
//     LOCK_SH and LOCK_EX in the kernel, because flock(2) converts by
//     releasing first, which is not atomic: a writer takes LOCK_EX only
//     after the last reader released.
//   - Waiters are served in arrival order, and a reader that arrives while
//     anyone queues queues too, so a waiting writer is not starved by a
//     stream of readers in the process. Consecutive readers at the head of
//     the queue are admitted together.
//
// The fd cache closes a descriptor only after tryAcquire, which succeeds
// only if nobody in the process holds, takes or waits for the lock.
type lockState struct {
	mu      sync.Mutex
	phase   phase
	readers int32   // goroutines holding the shared lock; guarded by mu
	head    *waiter // queue of waiting callers, oldest first; guarded by mu
	tail    *waiter
	// owner is the caller for which the kernel waiter (see waiter.go)
	// takes the lock, or nil if there is no kernel waiter or its caller
	// walked away; guarded by mu.
	owner *waiter

	held atomic.Bool // a writer holds LOCK_EX; Unlock clears it first
	ref  atomic.Bool // used since the cache's clock hand last passed
	fd   int         // lock file descriptor, or -1; written only by the turn's owner
	// checked is when fd was last found to be the file its name leads
	// to, on the cache's clock (recheck.go); written only by the turn's
	// owner.
	checked int64
	slot    int // index in fdCache.open, or -1; guarded by fdCache.mu
	// opens is how often fdCache opened fd, at most 2; guarded by
	// fdCache.mu. A state opened once is on probation (fdcache.go).
	opens uint8
	// fresh says the ID was just allocated, so its lock file most likely
	// does not exist yet; guarded by fdCache.mu.
	fresh bool
	id    uint32
}

// phase is what a lockState is doing. Only phaseIdle and phaseShared let a
// caller in without queueing.
type phase uint8

const (
	// phaseIdle: nobody in the process holds or takes the lock, and the
	// descriptor, if open, holds no flock.
	phaseIdle phase = iota
	// phaseWriter: one goroutine, or the kernel waiter on its behalf,
	// is taking LOCK_EX, holds it, or is releasing it.
	phaseWriter
	// phaseTakingShared: the first reader, or the kernel waiter on its
	// behalf, is taking LOCK_SH; other readers queue until it is held.
	phaseTakingShared
	// phaseShared: LOCK_SH is held for st.readers goroutines.
	phaseShared
	// phaseReleasingShared: the last reader is releasing LOCK_SH.
	phaseReleasingShared
	// phaseCache: the fd cache took the state with tryAcquire.
	phaseCache
)

func newLockState(id uint32) *lockState {
	return &lockState{fd: -1, slot: -1, id: id}
}

// tryAcquire takes the state exclusively if nobody in the process holds,
// takes or waits for the lock, so that the fd cache may close its
// descriptor. It never waits.
func (st *lockState) tryAcquire() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.phase != phaseIdle || st.head != nil {
		return false
	}
	st.phase = phaseCache
	return true
}

// release undoes tryAcquire, letting in whoever queued meanwhile.
func (st *lockState) release() {
	st.mu.Lock()
	st.phase = phaseIdle
	st.dispatch()
	st.mu.Unlock()
}

// grant says what a waiter was given.
type grant uint8

const (
	grantNone grant = iota
	grantTurn       // the turn: the waiter takes the flock itself
	grantHeld       // the lock, already taken in the kernel
	grantErr        // nothing: the kernel waiter failed with waiter.err
)

// A waiter is a caller queued on a lockState, or the caller for which the
// kernel waiter takes the lock.
type waiter struct {
	prev, next *waiter
	queued     bool
	write      bool
	got        grant // set under st.mu before the token is sent on ch
	err        error
	ch         chan struct{} // one token per grant
}

// Waiters are reused: a contended lock would otherwise allocate a waiter
// and its channel on every wait.
var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

func getWaiter(write bool) *waiter {
	w := waiterPool.Get().(*waiter)
	w.write = write
	return w
}

// putWaiter returns w, whose channel is empty and which is neither queued
// nor the kernel waiter's owner, to the pool. w may be nil.
func putWaiter(w *waiter) {
	if w == nil {
		return
	}
	w.got, w.err = grantNone, nil
	waiterPool.Put(w)
}

// give grants g to w. st.mu must be held, and w must be neither queued nor
// holding an unreceived grant.
func (w *waiter) give(g grant) {
	w.got = g
	w.ch <- struct{}{}
}

// push queues w last. st.mu must be held.
func (st *lockState) push(w *waiter) {
	w.queued = true
	w.prev, w.next = st.tail, nil
	if st.tail != nil {
		st.tail.next = w
	} else {
		st.head = w
	}
	st.tail = w
}

// remove takes w out of the queue. st.mu must be held.
func (st *lockState) remove(w *waiter) {
	if !w.queued {
		return
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		st.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		st.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
}

// dispatch serves the head of the queue if the phase allows: from idle it
// gives the turn to the first waiter; while the shared lock is held it
// admits the readers at the head. st.mu must be held.
func (st *lockState) dispatch() {
	switch st.phase {
	case phaseIdle:
		w := st.head
		if w == nil {
			return
		}
		st.remove(w)
		if w.write {
			st.phase = phaseWriter
		} else {
			st.phase = phaseTakingShared
		}
		w.give(grantTurn)
	case phaseShared:
		st.admitReaders()
	}
}

// admitReaders lets in the readers at the head of the queue, up to the
// first writer, while the shared lock is held. st.mu must be held.
func (st *lockState) admitReaders() {
	for w := st.head; w != nil && !w.write; w = st.head {
		st.remove(w)
		st.readers++
		w.give(grantHeld)
	}
}
