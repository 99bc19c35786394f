//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

// The Locker: Lock, TryLock, LockContext and Unlock, in one process and
// against other processes and flock(1), and what Close does to waiters.

func TestUnlockUnlockedPanics(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	l := mustRetrieve(t, m, 4)
	check := func(when string) {
		t.Helper()
		v := panicValue(l.Unlock)
		if v == nil {
			t.Fatalf("Unlock %s did not panic", when)
		}
		msg := fmtValue(v)
		if !strings.Contains(msg, "unlocked") || !strings.Contains(msg, "4") {
			t.Errorf("Unlock %s panicked with %q; want a message naming the unlocked lock", when, msg)
		}
	}
	check("of a never-locked lock")
	l.Lock()
	l.Unlock()
	check("twice")
	// The lock still works.
	if !l.TryLock() {
		t.Fatal("TryLock after a bad Unlock failed")
	}
	l.Unlock()
}

func fmtValue(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	return fmt.Sprint(v)
}

func TestTryLock(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	other := open(t, m.Dir())
	a, b := mustRetrieve(t, m, 2), mustRetrieve(t, m, 2)
	c := mustRetrieve(t, other, 2)
	if !a.TryLock() {
		t.Fatal("TryLock of a free lock failed")
	}
	for name, l := range map[string]*filelock.Locker{"the same Locker": a, "another Locker": b, "another Manager": c} {
		if canLock(l) {
			t.Errorf("TryLock through %s succeeded while the lock is held", name)
		}
	}
	if !mustRetrieve(t, m, 3).TryLock() {
		t.Error("TryLock of another ID failed")
	}
	a.Unlock()
	if !c.TryLock() {
		t.Fatal("TryLock from another Manager after Unlock failed")
	}
	if b.TryLock() {
		t.Error("TryLock succeeded while another Manager holds the lock")
	}
	c.Unlock()
	if !b.TryLock() {
		t.Error("TryLock after the other Manager's Unlock failed")
	}
	b.Unlock()
}

func TestLockContext(t *testing.T) {
	t.Parallel()
	for _, holder := range []string{"same Manager", "another Manager", "another process"} {
		t.Run(holder, func(t *testing.T) {
			t.Parallel()
			m := create(t, 10)
			var release func()
			switch holder {
			case "same Manager":
				h := mustRetrieve(t, m, 5)
				h.Lock()
				release = h.Unlock
			case "another Manager":
				h := mustRetrieve(t, open(t, m.Dir()), 5)
				h.Lock()
				release = h.Unlock
			case "another process":
				c := holdInChild(t, m.Dir(), 5)
				release = func() { c.Wait(childExit) }
			}
			l := mustRetrieve(t, m, 5)

			// Deadline.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
			err := l.LockContext(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("LockContext with a deadline on a held lock: %v, want DeadlineExceeded", err)
			}

			// Cancellation, measured from the cancel.
			ctx, cancel = context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() { errc <- l.LockContext(ctx) }()
			time.Sleep(30 * time.Millisecond) // let it start waiting
			start := time.Now()
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("LockContext did not return 10s after its context was cancelled")
			}
			latency := time.Since(start)
			t.Logf("LockContext returned %v after cancel", latency)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("LockContext after cancel: %v, want context.Canceled", err)
			}
			// Promptness is measured and logged above; a bound this
			// loose only catches a wait stuck in flock(2), which
			// would last until the holder's release below, without
			// failing on a loaded machine.
			if latency > time.Second {
				t.Errorf("LockContext returned %v after cancel, want within milliseconds", latency)
			}

			// Nothing is left held. The cancelled LockContext's kernel
			// waiter takes the lock when the holder lets go and then
			// releases it, in its own goroutine: soon, not at once.
			release()
			if !freeElsewhere(t, m.Dir(), 5) {
				t.Error("lock held after a cancelled LockContext and the holder's Unlock")
			}
			if !eventually(func() bool { return canLock(l) }) {
				t.Fatal("TryLock through the same Manager kept failing after a cancelled LockContext")
			}

			// And it takes the lock once it is released.
			h := mustRetrieve(t, open(t, m.Dir()), 5)
			h.Lock()
			go func() {
				time.Sleep(20 * time.Millisecond)
				h.Unlock()
			}()
			ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := l.LockContext(ctx); err != nil {
				t.Fatalf("LockContext on a lock released later: %v", err)
			}
			l.Unlock()
		})
	}
}

func TestLockContextNoDeadline(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	l := mustRetrieve(t, m, 1)
	if err := l.LockContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !heldElsewhere(t, m.Dir(), 1) {
		t.Error("LockContext returned nil without holding the lock")
	}
	l.Unlock()
}

func TestUnlockFromAnotherGoroutine(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	l := mustRetrieve(t, m, 0)
	for range 100 {
		l.Lock()
		done := make(chan any)
		go func() { done <- panicValue(l.Unlock) }()
		if v := <-done; v != nil {
			t.Fatalf("Unlock from another goroutine panicked: %v", v)
		}
	}
	if heldElsewhere(t, m.Dir(), 0) {
		t.Error("lock held after Unlock from another goroutine")
	}
}

// TestMutualExclusion runs goroutines that increment a counter under the
// lock with a read, a yield and a write, so that any overlap loses an
// update. The counter uses atomic loads and stores only so that the race
// detector, which cannot see flock, stays quiet between Managers; the
// increment itself is not atomic.
func TestMutualExclusion(t *testing.T) {
	t.Parallel()
	const goroutines, rounds = 8, 200
	for _, how := range []string{"one Locker", "separate Lockers", "two Managers", "three Managers, LockContext and TryLock"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			m := create(t, 10)
			shared := mustRetrieve(t, m, 3)
			managers := []*filelock.Manager{m}
			switch how {
			case "two Managers":
				managers = append(managers, open(t, m.Dir()))
			case "three Managers, LockContext and TryLock":
				managers = append(managers, open(t, m.Dir()), open(t, m.Dir()))
			}
			var counter, inside, overlaps atomic.Int64
			var wg sync.WaitGroup
			for g := range goroutines {
				l := shared
				if how != "one Locker" {
					l = mustRetrieve(t, managers[g%len(managers)], 3)
				}
				wg.Go(func() {
					for range rounds {
						switch {
						case strings.Contains(how, "TryLock") && g%3 == 1:
							for !l.TryLock() {
								time.Sleep(10 * time.Microsecond)
							}
						case strings.Contains(how, "LockContext") && g%3 == 2:
							if err := l.LockContext(t.Context()); err != nil {
								panic(err)
							}
						default:
							l.Lock()
						}
						if inside.Add(1) != 1 {
							overlaps.Add(1)
						}
						v := counter.Load()
						time.Sleep(0) // yield
						counter.Store(v + 1)
						inside.Add(-1)
						l.Unlock()
					}
				})
			}
			wg.Wait()
			if got := counter.Load(); got != goroutines*rounds {
				t.Errorf("counter = %d, want %d: updates were lost", got, goroutines*rounds)
			}
			if n := overlaps.Load(); n != 0 {
				t.Errorf("%d times a goroutine entered the critical section while another was in it", n)
			}
		})
	}
}

// TestLockFile checks that LockFile creates the lock file with its
// documented mode, neither allocating nor locking it, and validates the ID.
func TestLockFile(t *testing.T) {
	t.Parallel()
	m, err := filelock.Create(filepath.Join(t.TempDir(), "ld"), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := m.LockFile(7)
	if err != nil {
		t.Fatal(err)
	}
	if p != m.LockPath(7) {
		t.Errorf("LockFile(7) = %q, want LockPath(7) = %q", p, m.LockPath(7))
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v, want a regular file with mode 0600", fi.Mode())
	}
	if ids, err := m.Allocated(); err != nil || len(ids) != 0 {
		t.Errorf("Allocated() = %v, %v after LockFile; want none", ids, err)
	}
	l, _ := m.Retrieve(7)
	if !canLock(l) {
		t.Error("lock 7 is not free after LockFile")
	}
	if _, err := m.LockFile(16); !errors.Is(err, lock.ErrInvalidID) {
		t.Errorf("LockFile(16) at capacity 16: %v, want lock.ErrInvalidID", err)
	}
}

// TestFailedLockerIsNilInterface checks that the lock.Manager methods return
// a nil lock.Locker with their error, not a nil *Locker inside one, which
// would compare unequal to nil.
func TestFailedLockerIsNilInterface(t *testing.T) {
	m, err := filelock.Create(filepath.Join(t.TempDir(), "locks"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for range 4 {
		if _, err := m.AllocateLock(); err != nil {
			t.Fatal(err)
		}
	}
	calls := map[string]func() (lock.Locker, error){
		"AllocateLock":            m.AllocateLock,
		"RetrieveLock":            func() (lock.Locker, error) { return m.RetrieveLock(9) },
		"AllocateAndRetrieveLock": func() (lock.Locker, error) { return m.AllocateAndRetrieveLock(1) },
	}
	for name, call := range calls {
		if l, err := call(); err == nil || l != nil {
			t.Errorf("%s = %v, %v; want a nil Locker and an error", name, l, err)
		}
	}
}

// TestHolderKilled kills a child holding a lock with SIGKILL; a Lock waiting
// for it gets it at once.
func TestHolderKilled(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	c := holdInChild(t, m.Dir(), 7)
	l := mustRetrieve(t, m, 7)
	if l.TryLock() {
		t.Fatal("TryLock succeeded while a child holds the lock")
	}
	locked := make(chan time.Time, 1)
	go func() {
		l.Lock()
		locked <- time.Now()
	}()
	time.Sleep(20 * time.Millisecond) // let Lock block in flock(2)
	killed := time.Now()
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-locked:
		t.Logf("Lock returned %v after SIGKILL of the holder", at.Sub(killed))
	case <-time.After(10 * time.Second):
		t.Fatal("Lock did not return 10s after the holder was killed")
	}
	l.Unlock()
}

// TestWaitersDoNotPinThreads parks 1,000 goroutines on one lock held by
// another Manager; they must not each hold an OS thread in flock(2).
func TestWaitersDoNotPinThreads(t *testing.T) {
	// Not parallel: it counts the process's threads.
	const waiters = 1000
	m := create(t, 10)
	holder := mustRetrieve(t, open(t, m.Dir()), 1)
	holder.Lock()
	threads := pprof.Lookup("threadcreate")
	before, beforeOS := threads.Count(), osThreads(t)
	var started, acquired atomic.Int64
	var wg sync.WaitGroup
	shared := mustRetrieve(t, m, 1)
	for i := range waiters {
		l := shared // half the waiters share one Locker
		if i%2 == 0 {
			l = mustRetrieve(t, m, 1) // the others have a Locker each
		}
		wg.Go(func() {
			started.Add(1)
			l.Lock()
			acquired.Add(1)
			l.Unlock()
		})
	}
	for started.Load() < waiters {
		runtime.Gosched()
	}
	// Give any implementation that blocks a thread per waiter the time
	// to do so; this sleep is not a measurement.
	time.Sleep(200 * time.Millisecond)
	after, afterOS := threads.Count(), osThreads(t)
	if n := acquired.Load(); n != 0 {
		t.Fatalf("%d goroutines acquired a lock another Manager holds", n)
	}
	t.Logf("threads created: %d before, %d with %d waiters; OS threads %d -> %d", before, after, waiters, beforeOS, afterOS)
	if after-before > 20 {
		t.Errorf("%d threads created for %d waiters", after-before, waiters)
	}
	if beforeOS > 0 && afterOS-beforeOS > 20 {
		t.Errorf("OS threads went from %d to %d with %d waiters", beforeOS, afterOS, waiters)
	}
	holder.Unlock()
	wg.Wait()
	if n := acquired.Load(); n != waiters {
		t.Errorf("%d of %d waiters acquired the lock", n, waiters)
	}
}

// osThreads returns the Threads line of /proc/self/status, or 0.
func osThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
