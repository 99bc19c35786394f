package locktest

import (
	"errors"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/lockdir/lockdir/internal/childproc"
	"github.com/lockdir/lockdir/lock"
)

// Harness tells Run how to make and reopen the managers under test.
type Harness struct {
	// New returns a new manager with no lock allocated and room for
	// capacity locks, and the address (a directory, say) from which Open
	// opens further handles on the same set of locks. New reports setup
	// failures with t.Fatal and releases what it made with t.Cleanup.
	New func(t *testing.T, capacity uint32) (m lock.Manager, addr string)

	// Open opens another handle on the set of locks at addr. Run calls it
	// in the test process; child processes call the function given to
	// Main, which should behave the same. Run closes the managers that
	// Open returns if they implement io.Closer.
	Open func(addr string) (lock.Manager, error)

	// AnyFreeID lets AllocateLock return any free ID. By default the suite
	// expects the lowest free ID, as Podman's managers return.
	AnyFreeID bool

	// KillRelease bounds how long after a holder is killed its lock must
	// be free again. The default, 0, means two seconds, which a lock the
	// kernel releases meets at once; a manager whose locks outlive their
	// holder by a lease TTL sets it a little above that TTL.
	KillRelease time.Duration

	// CounterPatience bounds how long the counter checks, 1,600 Lock and
	// Unlock pairs between goroutines and 400 between processes, may take.
	// The default, 0, means ten seconds, ample for a local lock; a manager
	// whose Lock and Unlock are each a network round trip sets it higher.
	CounterPatience time.Duration
}

// Timing of the checks. A Lock that must block is watched for blockWindow;
// a Lock that must succeed is given patience.
const (
	blockWindow = 100 * time.Millisecond
	patience    = 10 * time.Second
	killLimit   = 2 * time.Second
)

// Environment variables that parameterize a child role; the role itself is
// named as childproc.Command does, in namespace "locktest".
const (
	envAddr = "LOCKTEST_CHILD_ADDR"
	envID   = "LOCKTEST_CHILD_ID"
	envN    = "LOCKTEST_CHILD_N"
	envFile = "LOCKTEST_CHILD_FILE"
)

// mainOpen is the open function given to Main, nil if Main was not called.
var mainOpen func(addr string) (lock.Manager, error)

// Main runs the tests of a package that calls Run. Call it from TestMain
// with a function that opens a handle on the locks at an address returned
// by Harness.New, usually the same function as Harness.Open:
//
//	func TestMain(m *testing.M) { locktest.Main(m, open) }
//
// When the process is a child started by Run, Main plays the child's role
// and exits without running any test. Otherwise it exits with the result of
// m.Run. Main does not return.
func Main(m *testing.M, open func(addr string) (lock.Manager, error)) {
	Setup(open)
	os.Exit(m.Run())
}

// Setup is the first half of Main, for a TestMain that has more to do
// around m.Run: in a child process started by the suite it plays the
// child's role and exits; otherwise it records open for Run and returns.
func Setup(open func(addr string) (lock.Manager, error)) {
	if role := childproc.Role("locktest"); role != "" {
		os.Exit(runChild(role, open))
	}
	mainOpen = open
}

// A check is one subtest of the suite.
type check struct {
	name string
	fn   func(t *testing.T, s *suite)
}

// groups lists the checks that Run runs, group by group.
var groups = []struct {
	name   string
	setup  func(t *testing.T)
	checks []check
}{
	{"Contract", nil, contractChecks},
	{"Goroutines", nil, goroutineChecks},
	{"Processes", processSetup, processChecks},
	{"Shared", nil, sharedChecks},
	{"SharedProcesses", processSetup, sharedProcessChecks},
}

// Run checks the Manager implementation made by h against the contract of
// package lock. Its subtests are grouped as Contract (the rules of a single
// handle and of two handles on the same locks), Goroutines (mutual
// exclusion and allocation between goroutines) and Processes (the same
// between processes, using child processes started from the test binary,
// which needs Main in TestMain), and, for managers whose Lockers implement
// RWLocker, Shared and SharedProcesses (the same for shared locks). Run
// returns when every subtest is done.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil || h.Open == nil {
		t.Fatal("locktest: Harness.New and Harness.Open must be set")
	}
	s := &suite{h: h}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			if g.setup != nil {
				g.setup(t)
			}
			for _, c := range g.checks {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.fn(t, s)
				})
			}
		})
	}
}

// suite holds what the checks share.
type suite struct {
	h Harness
}

// counterPatience is the bound of the counter checks.
func (s *suite) counterPatience() time.Duration {
	if s.h.CounterPatience > 0 {
		return s.h.CounterPatience
	}
	return patience
}

// new returns a new manager with the given capacity, and its address.
func (s *suite) new(t *testing.T, capacity uint32) (lock.Manager, string) {
	t.Helper()
	m, addr := s.h.New(t, capacity)
	if m == nil {
		t.Fatalf("Harness.New returned a nil manager")
	}
	return m, addr
}

// open opens another handle on the locks at addr, closed when t ends.
func (s *suite) open(t *testing.T, addr string) lock.Manager {
	t.Helper()
	m, err := s.h.Open(addr)
	if err != nil {
		t.Fatalf("Harness.Open(%q): %v", addr, err)
	}
	if c, ok := m.(io.Closer); ok {
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("closing manager opened on %q: %v", addr, err)
			}
		})
	}
	return m
}

// allocate calls m.AllocateLock and fails t on error.
func allocate(t *testing.T, m lock.Manager) lock.Locker {
	t.Helper()
	l, err := m.AllocateLock()
	if err != nil {
		t.Fatalf("AllocateLock: %v", err)
	}
	return l
}

// retrieve calls m.RetrieveLock(id), fails t on error and checks the ID.
func retrieve(t *testing.T, m lock.Manager, id uint32) lock.Locker {
	t.Helper()
	l, err := m.RetrieveLock(id)
	if err != nil {
		t.Fatalf("RetrieveLock(%d): %v", id, err)
	}
	if got := l.ID(); got != id {
		t.Fatalf("RetrieveLock(%d) returned a lock with ID %d", id, got)
	}
	return l
}

// allocateID calls m.AllocateAndRetrieveLock(id), fails t on error and
// checks the ID.
func allocateID(t *testing.T, m lock.Manager, id uint32) lock.Locker {
	t.Helper()
	l, err := m.AllocateAndRetrieveLock(id)
	if err != nil {
		t.Fatalf("AllocateAndRetrieveLock(%d): %v", id, err)
	}
	if got := l.ID(); got != id {
		t.Fatalf("AllocateAndRetrieveLock(%d) returned a lock with ID %d", id, got)
	}
	return l
}

// free calls l.Free and fails t on error.
func free(t *testing.T, l lock.Locker) {
	t.Helper()
	if err := l.Free(); err != nil {
		t.Fatalf("Free of lock %d: %v", l.ID(), err)
	}
}

// wantErr reports an error on t unless err matches target.
func wantErr(t *testing.T, err, target error, call string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want one matching %q", call, err, target)
	}
}

// wantAvailable checks m.AvailableLocks against want. A nil count passes:
// the manager has no maximum.
func wantAvailable(t *testing.T, m lock.Manager, want uint32, when string) {
	t.Helper()
	n, err := m.AvailableLocks()
	if err != nil {
		t.Errorf("AvailableLocks %s: %v", when, err)
		return
	}
	if n != nil && *n != want {
		t.Errorf("AvailableLocks %s = %d, want %d", when, *n, want)
	}
}

// wantHeld checks that m.LocksHeld returns want, in ascending order.
func wantHeld(t *testing.T, m lock.Manager, want []uint32, when string) {
	t.Helper()
	got, err := m.LocksHeld()
	if err != nil {
		t.Errorf("LocksHeld %s: %v", when, err)
		return
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("LocksHeld %s = %v, want %v", when, got, want)
	}
}

// panics calls f and returns what it panicked with, or nil.
func panics(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

// attempt is a call of Lock running in its own goroutine.
type attempt struct {
	l    lock.Locker
	done chan any // receives nil or the panic of Lock, then is closed
	got  bool     // Lock has returned and its result was received
}

// tryLock starts l.Lock in a new goroutine.
func tryLock(l lock.Locker) *attempt {
	a := &attempt{l: l, done: make(chan any, 1)}
	go func() {
		defer close(a.done)
		a.done <- panics(l.Lock)
	}()
	return a
}

// blocked reports whether the Lock is still blocked after blockWindow. It
// reports an error on t if not: the lock was not exclusive.
func (a *attempt) blocked(t *testing.T, why string) bool {
	t.Helper()
	select {
	case p := <-a.done:
		a.got = true
		if p != nil {
			t.Errorf("Lock of lock %d panicked: %v", a.l.ID(), p)
		} else {
			t.Errorf("Lock of lock %d did not block, but %s", a.l.ID(), why)
		}
		return false
	case <-time.After(blockWindow):
		return true
	}
}

// wait waits up to timeout for the Lock to return and returns when it did.
// It stops t if the Lock panics or is still blocked.
func (a *attempt) wait(t *testing.T, timeout time.Duration, why string) time.Time {
	t.Helper()
	if a.got {
		return time.Now()
	}
	select {
	case p := <-a.done:
		at := time.Now()
		a.got = true
		if p != nil {
			t.Fatalf("Lock of lock %d panicked: %v", a.l.ID(), p)
		}
		return at
	case <-time.After(timeout):
		t.Fatalf("Lock of lock %d still blocked after %v, but %s", a.l.ID(), timeout, why)
		panic("unreachable")
	}
}

// lockWithin locks l, failing t if that takes longer than patience.
func lockWithin(t *testing.T, l lock.Locker, why string) {
	t.Helper()
	tryLock(l).wait(t, patience, why)
}

// unlock calls l.Unlock and fails t if it panics.
func unlock(t *testing.T, l lock.Locker) {
	t.Helper()
	if p := panics(l.Unlock); p != nil {
		t.Fatalf("Unlock of lock %d panicked: %v", l.ID(), p)
	}
}
