package locktest

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockdir/lockdir/lock"
)

// RWLocker is a Locker that can also be held shared, as a sync.RWMutex
// can. Run checks shared locking for managers whose Lockers implement it,
// and skips those checks for the others.
//
// The suite expects, as sync.RWMutex gives between goroutines: any number
// of holders of RLock at once, in any goroutines and processes, and none
// while Lock holds the lock; Lock excludes readers as it excludes writers;
// and, within one manager handle, a writer is not starved by readers: once
// Lock waits, TryRLock fails and RLock waits until the writer is done.
type RWLocker interface {
	lock.Locker
	// RLock locks the lock shared, blocking until it is acquired.
	RLock()
	// RUnlock releases one shared hold of the lock.
	RUnlock()
	// TryRLock locks the lock shared if it can without waiting, and
	// reports whether it did.
	TryRLock() bool
}

// sharedChecks check shared locking between goroutines.
var sharedChecks = []check{
	{"ReadersTogether", checkReadersTogether},
	{"ReaderBlocksWriter", checkReaderBlocksWriter},
	{"WriterBlocksReader", checkWriterBlocksReader},
	{"WriterPreference", checkWriterPreference},
	{"Counter", checkSharedCounter},
}

// sharedProcessChecks check shared locking between processes.
var sharedProcessChecks = []check{
	{"ChildSharesWithParent", checkChildSharesWithParent},
	{"ChildWriterExcludesReaders", checkChildWriterExcludesReaders},
}

// rw returns l as an RWLocker, or skips t if the manager has no shared
// locks.
func rw(t *testing.T, l lock.Locker) RWLocker {
	t.Helper()
	r, ok := l.(RWLocker)
	if !ok {
		t.Skipf("%T does not implement locktest.RWLocker", l)
	}
	return r
}

// tryRLock starts l.RLock in a new goroutine.
func tryRLock(l RWLocker) *attempt {
	a := &attempt{l: l, done: make(chan any, 1)}
	go func() {
		defer close(a.done)
		a.done <- panics(l.RLock)
	}()
	return a
}

// rlockWithin read-locks l, failing t if that takes longer than patience.
func rlockWithin(t *testing.T, l RWLocker, why string) {
	t.Helper()
	tryRLock(l).wait(t, patience, why)
}

// runlock calls l.RUnlock and fails t if it panics.
func runlock(t *testing.T, l RWLocker) {
	t.Helper()
	if p := panics(l.RUnlock); p != nil {
		t.Fatalf("RUnlock of lock %d panicked: %v", l.ID(), p)
	}
}

// sharedLockers returns three Lockers for one ID: two of one manager and
// one of another handle on the same locks.
func sharedLockers(t *testing.T, s *suite) []RWLocker {
	m1, addr := s.new(t, 4)
	l := rw(t, allocate(t, m1))
	return []RWLocker{l, rw(t, retrieve(t, m1, l.ID())), rw(t, retrieve(t, s.open(t, addr), l.ID()))}
}

// checkReadersTogether: readers through one Locker, two Lockers and two
// handles hold the lock at once.
func checkReadersTogether(t *testing.T, s *suite) {
	ls := sharedLockers(t, s)
	for _, l := range ls {
		rlockWithin(t, l, "only readers hold the lock")
	}
	rlockWithin(t, ls[0], "only readers hold the lock") // a second hold through one Locker
	for _, l := range ls {
		if !l.TryRLock() {
			t.Errorf("TryRLock of lock %d failed while only readers hold it", l.ID())
		} else {
			runlock(t, l)
		}
	}
	runlock(t, ls[0])
	for _, l := range ls {
		runlock(t, l)
	}
	lockWithin(t, ls[2], "every reader unlocked")
	unlock(t, ls[2])
}

// checkReaderBlocksWriter: Lock blocks while a reader of the same Locker,
// another Locker or another handle holds the lock, until it unlocks.
func checkReaderBlocksWriter(t *testing.T, s *suite) {
	ls := sharedLockers(t, s)
	for _, pair := range [][2]int{{0, 0}, {0, 1}, {0, 2}, {2, 0}} {
		r, w := ls[pair[0]], ls[pair[1]]
		rlockWithin(t, r, "the lock is free")
		a := tryLock(w)
		if a.blocked(t, "a reader holds the lock") {
			runlock(t, r)
			a.wait(t, patience, "the reader unlocked")
		} else {
			runlock(t, r)
		}
		unlock(t, w)
	}
}

// checkWriterBlocksReader: RLock blocks and TryRLock fails while a writer
// holds the lock, until it unlocks.
func checkWriterBlocksReader(t *testing.T, s *suite) {
	ls := sharedLockers(t, s)
	for _, pair := range [][2]int{{0, 0}, {0, 1}, {0, 2}, {2, 0}} {
		w, r := ls[pair[0]], ls[pair[1]]
		lockWithin(t, w, "the lock is free")
		if r.TryRLock() {
			t.Errorf("TryRLock of lock %d succeeded while a writer holds it", r.ID())
			runlock(t, r)
		}
		a := tryRLock(r)
		if a.blocked(t, "a writer holds the lock") {
			unlock(t, w)
			a.wait(t, patience, "the writer unlocked")
		} else {
			unlock(t, w)
		}
		runlock(t, r)
	}
}

// checkWriterPreference: within one handle, once a writer waits for the
// lock that readers hold, TryRLock fails and RLock waits for the writer.
func checkWriterPreference(t *testing.T, s *suite) {
	ls := sharedLockers(t, s)
	r, w := ls[0], ls[1]
	rlockWithin(t, r, "the lock is free")
	wa := tryLock(w)
	deadline := time.Now().Add(patience)
	for r.TryRLock() {
		runlock(t, r)
		if time.Now().After(deadline) {
			runlock(t, r)
			t.Fatalf("TryRLock kept succeeding for %v while a writer waited", patience)
		}
		time.Sleep(time.Millisecond)
	}
	ra := tryRLock(r)
	if !ra.blocked(t, "a writer waits for the lock") {
		runlock(t, r)
		runlock(t, r)
		wa.wait(t, patience, "the readers unlocked")
		unlock(t, w)
		return
	}
	runlock(t, r)
	wa.wait(t, patience, "the reader unlocked")
	if ra.blocked(t, "the writer holds the lock") {
		unlock(t, w)
		ra.wait(t, patience, "the writer unlocked")
	} else {
		unlock(t, w)
	}
	runlock(t, r)
}

// checkSharedCounter runs writers that keep two counters equal under Lock
// and readers that check them under RLock, through Lockers of two handles:
// no reader sees a writer half done, and no increment is lost.
func checkSharedCounter(t *testing.T, s *suite) {
	ls := sharedLockers(t, s)
	var (
		a, b    atomic.Int64
		torn    atomic.Int32
		readers atomic.Int32
		wg      sync.WaitGroup
		stop    = make(chan struct{})
	)
	for g := range counterGoroutines {
		l := ls[g%len(ls)]
		if g%2 == 0 {
			wg.Go(func() {
				for range counterRounds / 4 {
					l.Lock()
					if readers.Load() != 0 {
						torn.Add(1)
					}
					a.Add(1)
					time.Sleep(time.Microsecond)
					b.Add(1)
					l.Unlock()
				}
			})
			continue
		}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				l.RLock()
				readers.Add(1)
				if a.Load() != b.Load() {
					torn.Add(1)
				}
				readers.Add(-1)
				l.RUnlock()
			}
		})
	}
	writersDone := make(chan struct{})
	go func() {
		defer close(writersDone)
		for a.Load() < counterGoroutines/2*counterRounds/4 {
			time.Sleep(time.Millisecond)
		}
	}()
	select {
	case <-writersDone:
	case <-time.After(patience):
		t.Errorf("writers did not finish within %v with readers running: writers starve", patience)
	}
	close(stop)
	wg.Wait()
	if n := torn.Load(); n > 0 {
		t.Errorf("%d times a reader and a writer held the lock together", n)
	}
	if got, want := a.Load(), int64(counterGoroutines/2*counterRounds/4); got != want {
		t.Errorf("writers incremented the counter to %d, want %d", got, want)
	}
}

// checkChildSharesWithParent: a child takes shared the lock that the test
// holds shared, and a child's Lock waits until both let go.
func checkChildSharesWithParent(t *testing.T, s *suite) {
	m, addr := s.new(t, 4)
	l := rw(t, allocate(t, m))
	id := envID + "=" + fmt.Sprint(l.ID())
	rlockWithin(t, l, "the lock is free")
	r := startChild(t, "rhold", addr, id)
	r.Expect("ready", patience)
	r.Expect("locked", patience)
	w := startChild(t, "hold", addr, id)
	w.Expect("ready", patience)
	if w.Quiet(blockWindow, "the test and a child hold the lock shared") {
		runlock(t, l)
		if w.Quiet(blockWindow, "a child holds the lock shared") {
			r.CloseStdin()
			r.Expect("unlocked", patience)
		}
	} else {
		runlock(t, l)
	}
	w.Expect("locked", patience)
	r.Wait(patience)
	w.Wait(patience)
}

// checkChildWriterExcludesReaders: while a child holds the lock, RLock in
// the test and in another child wait; both get it shared once it unlocks.
func checkChildWriterExcludesReaders(t *testing.T, s *suite) {
	m, addr := s.new(t, 4)
	l := rw(t, allocate(t, m))
	id := envID + "=" + fmt.Sprint(l.ID())
	w := startChild(t, "hold", addr, id)
	w.Expect("ready", patience)
	w.Expect("locked", patience)
	if l.TryRLock() {
		t.Error("TryRLock succeeded while a child holds the lock")
		runlock(t, l)
	}
	a := tryRLock(l)
	r := startChild(t, "rhold", addr, id)
	r.Expect("ready", patience)
	if a.blocked(t, "a child holds the lock") && r.Quiet(blockWindow, "another child holds the lock") {
		w.CloseStdin()
		w.Expect("unlocked", patience)
	}
	a.wait(t, patience, "the child unlocked")
	r.Expect("locked", patience)
	runlock(t, l)
	r.Wait(patience)
	w.Wait(patience)
}

// playRHold plays the child role rhold: read-lock the lock
// $LOCKTEST_CHILD_ID, print "ready" before RLock and "locked" after, then
// unlock at the end of input and print "unlocked".
func playRHold(m lock.Manager, id uint32, in io.Reader) error {
	l, err := m.RetrieveLock(id)
	if err != nil {
		return err
	}
	r, ok := l.(RWLocker)
	if !ok {
		return fmt.Errorf("%T does not implement locktest.RWLocker", l)
	}
	fmt.Println("ready")
	r.RLock()
	fmt.Println("locked")
	io.Copy(io.Discard, in)
	r.RUnlock()
	fmt.Println("unlocked")
	return nil
}
