package locktest_test

import (
	"fmt"
	"sync"

	"github.com/lockdir/lockdir/lock"
	"github.com/lockdir/lockdir/lock/locktest"
)

// Shared locks for memManager, with their own deliberate bugs, so that the
// suite's shared-lock checks can be seen to fail.
const (
	featShared           bugs = 1 << (iota + 16) // Lockers implement locktest.RWLocker
	bugSharedExclusive                           // RLock takes the lock exclusively
	bugSharedNoExclusion                         // RLock never blocks, and nothing waits for it
	bugReaderPreference                          // readers overtake waiting writers
)

// memRWLocker is a memLocker with shared locking, through an rwState per
// lock instead of the memLock's semaphore.
type memRWLocker struct {
	*memLocker
}

var _ locktest.RWLocker = memRWLocker{}

// withShared returns l as a memRWLocker if the manager has shared locks.
func withShared(l *memLocker) lock.Locker {
	if l.m.bugs&featShared != 0 {
		return memRWLocker{l}
	}
	return l
}

// rwState is a readers-writer lock with writer preference, unless the
// reader-preference bug is set.
type rwState struct {
	mu      sync.Mutex
	cond    sync.Cond
	readers int
	writer  bool
	waiting int // writers waiting
}

var rwStates sync.Map // *memLock -> *rwState

func (l memRWLocker) state() *rwState {
	s := &rwState{}
	s.cond.L = &s.mu
	v, _ := rwStates.LoadOrStore(l.l, s)
	return v.(*rwState)
}

func (l memRWLocker) holders(d int) {
	l.l.mu.Lock()
	l.l.holders += d
	l.l.mu.Unlock()
}

func (l memRWLocker) Lock() {
	s := l.state()
	s.mu.Lock()
	s.waiting++
	for s.writer || s.readers > 0 {
		s.cond.Wait()
	}
	s.waiting--
	s.writer = true
	s.mu.Unlock()
	l.holders(1)
}

func (l memRWLocker) Unlock() {
	s := l.state()
	s.mu.Lock()
	if !s.writer {
		s.mu.Unlock()
		panic(fmt.Sprintf("unlock of unlocked lock %d", l.id))
	}
	s.writer = false
	s.cond.Broadcast()
	s.mu.Unlock()
	l.holders(-1)
}

// readerMayEnter reports whether a reader may go in. s.mu must be held.
func (l memRWLocker) readerMayEnter(s *rwState) bool {
	switch {
	case l.m.bugs&bugSharedExclusive != 0:
		return !s.writer && s.readers == 0
	case l.m.bugs&bugReaderPreference != 0:
		return !s.writer
	default:
		return !s.writer && s.waiting == 0
	}
}

func (l memRWLocker) RLock() {
	if l.m.bugs&bugSharedNoExclusion != 0 {
		return
	}
	s := l.state()
	s.mu.Lock()
	for !l.readerMayEnter(s) {
		s.cond.Wait()
	}
	s.readers++
	s.mu.Unlock()
	l.holders(1)
}

func (l memRWLocker) TryRLock() bool {
	if l.m.bugs&bugSharedNoExclusion != 0 {
		return true
	}
	s := l.state()
	s.mu.Lock()
	ok := l.readerMayEnter(s)
	if ok {
		s.readers++
	}
	s.mu.Unlock()
	if ok {
		l.holders(1)
	}
	return ok
}

func (l memRWLocker) RUnlock() {
	if l.m.bugs&bugSharedNoExclusion != 0 {
		return
	}
	s := l.state()
	s.mu.Lock()
	if s.readers == 0 {
		s.mu.Unlock()
		panic(fmt.Sprintf("runlock of lock %d, which is not read-locked", l.id))
	}
	s.readers--
	s.cond.Broadcast()
	s.mu.Unlock()
	l.holders(-1)
}
