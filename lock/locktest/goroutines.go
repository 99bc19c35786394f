package locktest

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockdir/lockdir/lock"
)

// goroutineChecks check mutual exclusion and allocation between goroutines
// of the test process.
var goroutineChecks = []check{
	{"BlocksSameLocker", checkBlocksSameLocker},
	{"BlocksOtherLocker", checkBlocksOtherLocker},
	{"BlocksOtherHandle", checkBlocksOtherHandle},
	{"UnlockInOtherGoroutine", checkUnlockInOtherGoroutine},
	{"CounterSharedLocker", checkCounterSharedLocker},
	{"CounterSeparateLockers", checkCounterSeparateLockers},
	{"CounterTwoHandles", checkCounterTwoHandles},
	{"ConcurrentAllocate", checkConcurrentAllocate},
}

// Size of the counter checks: goroutines, and increments by each.
const (
	counterGoroutines = 8
	counterRounds     = 200
)

// blocks holds held and checks that Lock of waiter blocks until held is
// unlocked.
func blocks(t *testing.T, held, waiter lock.Locker, why string) {
	t.Helper()
	lockWithin(t, held, "the lock is free")
	a := tryLock(waiter)
	if a.blocked(t, why) {
		unlock(t, held)
		a.wait(t, patience, "the holder unlocked it")
	}
	unlock(t, waiter)
}

// checkBlocksSameLocker: a goroutine blocks in Lock of a Locker that
// another goroutine holds.
func checkBlocksSameLocker(t *testing.T, s *suite) {
	m, _ := s.new(t, 4)
	l := allocate(t, m)
	blocks(t, l, l, "the same Locker is held")
}

// checkBlocksOtherLocker: a goroutine blocks in Lock of a Locker whose ID
// another Locker of the same manager holds.
func checkBlocksOtherLocker(t *testing.T, s *suite) {
	m, _ := s.new(t, 4)
	l := allocate(t, m)
	blocks(t, l, retrieve(t, m, l.ID()), "another Locker with its ID is held")
	u := retrieve(t, m, 3)
	blocks(t, u, retrieve(t, m, 3), "another Locker with its unallocated ID is held")
}

// checkBlocksOtherHandle: a goroutine blocks in Lock of a Locker whose ID
// a Locker of another handle on the same locks holds.
func checkBlocksOtherHandle(t *testing.T, s *suite) {
	m1, addr := s.new(t, 4)
	m2 := s.open(t, addr)
	l := allocate(t, m1)
	blocks(t, l, retrieve(t, m2, l.ID()), "a Locker of another handle holds its ID")
	blocks(t, retrieve(t, m2, l.ID()), l, "a Locker of another handle holds its ID")
}

// checkUnlockInOtherGoroutine locks in one goroutine and unlocks in
// another, as sync.Mutex allows.
func checkUnlockInOtherGoroutine(t *testing.T, s *suite) {
	m, _ := s.new(t, 4)
	l := allocate(t, m)
	lockWithin(t, l, "the lock is free") // locks in another goroutine
	a := tryLock(retrieve(t, m, l.ID()))
	if a.blocked(t, "another goroutine holds it") {
		unlock(t, l)
		a.wait(t, patience, "it was unlocked")
	}
	done := make(chan any)
	go func() { done <- panics(a.l.Unlock) }()
	if p := <-done; p != nil {
		t.Fatalf("Unlock in a goroutine other than the locking one panicked: %v", p)
	}
	lockWithin(t, l, "it was unlocked in another goroutine")
	unlock(t, l)
}

// count runs counterGoroutines goroutines that each increment a counter
// counterRounds times under the lock returned by lockerFor. The counter is
// read and written in separate steps, and each goroutine yields between
// them, so that increments are lost unless the lock excludes. With shared
// set, the counter is an ordinary variable, which also needs Unlock to
// happen before the next Lock for the race detector; otherwise it is read
// and written with atomic operations, for Lockers that only the operating
// system synchronizes.
func count(t *testing.T, s *suite, shared bool, lockerFor func(g int) lock.Locker) {
	t.Helper()
	var (
		plain   int
		atomicN atomic.Int64
		inside  atomic.Int32
		overlap atomic.Int32
		wg      sync.WaitGroup
		lockers = make([]lock.Locker, counterGoroutines)
	)
	for g := range lockers {
		lockers[g] = lockerFor(g)
	}
	var panicked atomic.Value
	for _, l := range lockers {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					panicked.CompareAndSwap(nil, fmt.Sprint(p))
				}
			}()
			for range counterRounds {
				l.Lock()
				if inside.Add(1) != 1 {
					overlap.Add(1)
				}
				if shared {
					n := plain
					runtime.Gosched()
					plain = n + 1
				} else {
					n := atomicN.Load()
					runtime.Gosched()
					atomicN.Store(n + 1)
				}
				inside.Add(-1)
				l.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.counterPatience()):
		t.Fatalf("goroutines incrementing a counter under the lock did not finish within %v", s.counterPatience())
	}
	if p := panicked.Load(); p != nil {
		t.Fatalf("Lock or Unlock panicked: %v", p)
	}
	got := int(atomicN.Load())
	if shared {
		got = plain
	}
	if want := counterGoroutines * counterRounds; got != want {
		t.Errorf("counter incremented under the lock is %d, want %d", got, want)
	}
	if n := overlap.Load(); n > 0 {
		t.Errorf("%d times a goroutine entered the critical section while another was in it", n)
	}
}

// checkCounterSharedLocker: goroutines sharing one Locker exclude each
// other.
func checkCounterSharedLocker(t *testing.T, s *suite) {
	m, _ := s.new(t, 4)
	l := allocate(t, m)
	count(t, s, true, func(int) lock.Locker { return l })
}

// checkCounterSeparateLockers: goroutines with their own Lockers for one ID
// of one manager exclude each other.
func checkCounterSeparateLockers(t *testing.T, s *suite) {
	m, _ := s.new(t, 4)
	id := allocate(t, m).ID()
	count(t, s, true, func(int) lock.Locker { return retrieve(t, m, id) })
}

// checkCounterTwoHandles: goroutines with Lockers for one ID from two
// handles on the same locks exclude each other.
func checkCounterTwoHandles(t *testing.T, s *suite) {
	m1, addr := s.new(t, 4)
	m2 := s.open(t, addr)
	id := allocate(t, m1).ID()
	ms := []lock.Manager{m1, m2}
	count(t, s, false, func(g int) lock.Locker { return retrieve(t, ms[g%2], id) })
}

// checkConcurrentAllocate allocates every lock from goroutines on three
// handles at once: every ID is allocated exactly once.
func checkConcurrentAllocate(t *testing.T, s *suite) {
	const n, workers = 64, 8
	m1, addr := s.new(t, n)
	ms := []lock.Manager{m1, s.open(t, addr), s.open(t, addr)}
	var (
		mu   sync.Mutex
		ids  []uint32
		errs []error
		wg   sync.WaitGroup
	)
	start := make(chan struct{})
	for w := range workers {
		m := ms[w%len(ms)]
		wg.Go(func() {
			<-start
			for {
				l, err := m.AllocateLock()
				mu.Lock()
				switch {
				case errors.Is(err, lock.ErrNoFreeLocks):
				case err != nil:
					errs = append(errs, fmt.Errorf("AllocateLock: %w", err))
				default:
					ids = append(ids, l.ID())
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	slices.Sort(ids)
	for i, id := range ids {
		if i > 0 && ids[i-1] == id {
			t.Errorf("concurrent AllocateLock returned ID %d twice", id)
		}
		if id >= n {
			t.Errorf("concurrent AllocateLock returned ID %d, out of range for capacity %d", id, n)
		}
	}
	if len(ids) != n {
		t.Errorf("concurrent AllocateLock allocated %d locks, want %d", len(ids), n)
	}
	wantAvailable(t, m1, 0, "after concurrent allocation of every lock")
}
