//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/internal/childproc"
)

// Timing of the in-process checks: a call that must block is watched for
// blockWindow; one that must return is given patience. Neither is a speed
// assertion: blockWindow only has to outlast a wrong implementation's
// immediate return, and patience a loaded machine.
const (
	blockWindow = 100 * time.Millisecond
	patience    = 10 * time.Second
)

// call is a lock call running in its own goroutine.
type call struct {
	name string
	done chan error // receives the call's result (a panic as an error), once
	got  bool
	err  error
}

// start runs fn in a new goroutine.
func start(name string, fn func() error) *call {
	c := &call{name: name, done: make(chan error, 1)}
	go func() {
		defer func() {
			if p := recover(); p != nil {
				c.done <- errors.New("panic: " + anyString(p))
			}
		}()
		c.done <- fn()
	}()
	return c
}

func anyString(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return "non-string panic"
}

// A mode is one way of holding a lock, exclusive or shared: its methods,
// and their names for messages.
type mode struct {
	name, contextName string
	holder            string // "writer" or "reader"
	lock, unlock      func(*filelock.Locker)
	try               func(*filelock.Locker) bool
	lockContext       func(*filelock.Locker, context.Context) error
}

var (
	exclusive = mode{"Lock", "LockContext", "writer", (*filelock.Locker).Lock, (*filelock.Locker).Unlock, (*filelock.Locker).TryLock, (*filelock.Locker).LockContext}
	shared    = mode{"RLock", "RLockContext", "reader", (*filelock.Locker).RLock, (*filelock.Locker).RUnlock, (*filelock.Locker).TryRLock, (*filelock.Locker).RLockContext}
	modes     = []mode{exclusive, shared}
)

// can reports whether l can take the lock in mode md at once, and lets go
// of it again if so.
func (md mode) can(l *filelock.Locker) bool {
	if md.try(l) {
		md.unlock(l)
		return true
	}
	return false
}

// canLock and canRLock report whether l can take the lock, exclusive or
// shared, at once, and let go of it again if so.
func canLock(l *filelock.Locker) bool  { return exclusive.can(l) }
func canRLock(l *filelock.Locker) bool { return shared.can(l) }

// start runs md's lock call in a goroutine, and startContext its context
// form.
func (md mode) start(l *filelock.Locker) *call {
	return start(md.name, func() error { md.lock(l); return nil })
}

func (md mode) startContext(ctx context.Context, l *filelock.Locker) *call {
	return start(md.contextName, func() error { return md.lockContext(l, ctx) })
}

// startLock, startRLock and the context forms start the call in a goroutine.
func startLock(l *filelock.Locker) *call  { return exclusive.start(l) }
func startRLock(l *filelock.Locker) *call { return shared.start(l) }

func startLockContext(ctx context.Context, l *filelock.Locker) *call {
	return exclusive.startContext(ctx, l)
}

func startRLockContext(ctx context.Context, l *filelock.Locker) *call {
	return shared.startContext(ctx, l)
}

// blocked reports whether the call is still running after blockWindow, and
// fails t if it returned, which it should not have because of why.
func (c *call) blocked(t *testing.T, why string) bool {
	t.Helper()
	select {
	case c.err = <-c.done:
		c.got = true
		t.Errorf("%s returned (%v), but %s", c.name, c.err, why)
		return false
	case <-time.After(blockWindow):
		return true
	}
}

// wait returns the call's result, stopping t if it takes longer than
// patience.
func (c *call) wait(t *testing.T, why string) error {
	t.Helper()
	if c.got {
		return c.err
	}
	select {
	case c.err = <-c.done:
		c.got = true
		return c.err
	case <-time.After(patience):
		t.Fatalf("%s still blocked after %v, but %s", c.name, patience, why)
		return nil
	}
}

// wantCanceled waits for the call, whose context was cancelled as how
// says, and fails t unless it returned context.Canceled.
func (c *call) wantCanceled(t *testing.T, how string) {
	t.Helper()
	if err := c.wait(t, "its context was cancelled"); !errors.Is(err, context.Canceled) {
		t.Errorf("%s %s: %v, want context.Canceled", c.name, how, err)
	}
}

// mustReturn waits for the call and fails t unless it succeeded.
func (c *call) mustReturn(t *testing.T, why string) {
	t.Helper()
	if err := c.wait(t, why); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
}

// eventually polls cond until it holds or patience runs out, and reports
// whether it held.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// writerQueued waits until l's state has a writer queued or holding, which
// TryRLock reports by failing while no other process holds the lock.
func writerQueued(t *testing.T, l *filelock.Locker) {
	t.Helper()
	ok := eventually(func() bool { return !canRLock(l) })
	if !ok {
		t.Fatal("TryRLock kept succeeding: the writer never queued")
	}
}

// fdsUnderSettled is fdsUnder once the count reaches zero, or after
// patience: a kernel waiter left behind by a cancelled LockContext closes
// its descriptor in its own goroutine when it gets the lock.
func fdsUnderSettled(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	eventually(func() bool { n = fdsUnder(t, dir); return n == 0 })
	return n
}

// freeElsewhere waits until another Manager can take lock id exclusively,
// and reports whether it could.
func freeElsewhere(t *testing.T, dir string, id uint32) bool {
	t.Helper()
	return eventually(func() bool { return !heldElsewhere(t, dir, id) })
}

// sharedElsewhere reports whether another Manager can take lock id shared
// at once.
func sharedElsewhere(t *testing.T, dir string, id uint32) bool {
	t.Helper()
	m := open(t, dir)
	defer m.Close()
	l := mustRetrieve(t, m, id)
	return canRLock(l)
}

// rwEnv is what a check of the in-process semantics works on: two Lockers
// for one ID of one Manager (the same Locker twice, or two), and another
// Manager on the directory, which stands for another process.
type rwEnv struct {
	m     *filelock.Manager
	a, b  *filelock.Locker
	other *filelock.Locker // the same ID through another Manager
	dir   string
	id    uint32
}

// TestRWInProcess checks that a Locker is a sync.RWMutex between the
// goroutines of a process, and LOCK_SH/LOCK_EX towards other Managers.
func TestRWInProcess(t *testing.T) {
	t.Parallel()
	checks := []struct {
		name string
		fn   func(t *testing.T, e rwEnv)
	}{
		{"ReadersTogether", checkReadersTogether},
		{"WriterExcludesReaders", checkExcludes(exclusive, shared)},
		{"ReadersExcludeWriter", checkExcludes(shared, exclusive)},
		{"WriterPreference", checkWriterPreference},
		{"TryRLock", checkTryRLock},
		{"CancelQueued", checkCancelQueued},
		{"CancelQueuedWriterAdmitsReaders", checkCancelQueuedWriterAdmitsReaders},
		{"CancelKernelWaiter", checkCancelKernelWaiter},
		{"HandoffToWriter", checkHandoffToWriter},
		{"HandoffToReaders", checkHandoffToReaders},
		{"KernelWaiterShared", checkKernelWaiterShared},
		{"Misuse", checkMisuse},
	}
	for _, c := range checks {
		for _, same := range []bool{true, false} {
			name := c.name + "/TwoLockers"
			if same {
				name = c.name + "/OneLocker"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				m := create(t, 10)
				e := rwEnv{m: m, a: mustRetrieve(t, m, 3), dir: m.Dir(), id: 3}
				e.b = e.a
				if !same {
					e.b = mustRetrieve(t, m, 3)
				}
				e.other = mustRetrieve(t, open(t, m.Dir()), 3)
				c.fn(t, e)
			})
		}
	}
}

// checkReadersTogether: several goroutines hold the shared lock at once,
// another Manager can share it, and nobody can take it exclusively.
func checkReadersTogether(t *testing.T, e rwEnv) {
	const n = 8
	var all sync.WaitGroup
	all.Add(n)
	release := make(chan struct{})
	var calls []*call
	for i := range n {
		l := e.a
		if i%2 == 1 {
			l = e.b
		}
		calls = append(calls, start("RLock", func() error {
			l.RLock()
			all.Done()
			<-release
			l.RUnlock()
			return nil
		}))
	}
	together := make(chan struct{})
	go func() { all.Wait(); close(together) }()
	select {
	case <-together:
	case <-time.After(patience):
		t.Fatalf("%d readers did not all hold the lock at once within %v", n, patience)
	}
	if !sharedElsewhere(t, e.dir, e.id) {
		t.Error("another Manager could not share the lock with this process's readers")
	}
	if canLock(e.other) {
		t.Error("another Manager took the lock exclusively while readers held it")
	}
	if canLock(e.a) {
		t.Error("TryLock succeeded while readers held the lock")
	}
	close(release)
	for _, c := range calls {
		c.mustReturn(t, "the readers were released")
	}
	if heldElsewhere(t, e.dir, e.id) {
		t.Error("lock still held after every reader's RUnlock")
	}
}

// checkExcludes returns the check that while a Locker holds the lock in
// mode held, a call in mode waits blocks, its Try form fails and its
// context form times out; that unlocking lets it in; and that meanwhile
// another Manager cannot take the lock in mode held.
func checkExcludes(held, waits mode) func(t *testing.T, e rwEnv) {
	return func(t *testing.T, e rwEnv) {
		held.lock(e.a)
		c := waits.start(e.b)
		if c.blocked(t, "a "+held.holder+" holds the lock") {
			if waits.can(e.b) {
				t.Errorf("Try%s succeeded while a %s holds the lock", waits.name, held.holder)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
			err := waits.lockContext(e.b, ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s while a %s holds the lock: %v, want DeadlineExceeded", waits.contextName, held.holder, err)
			}
		}
		held.unlock(e.a)
		c.mustReturn(t, "the "+held.holder+" unlocked")
		if held.can(e.other) {
			t.Errorf("another Manager took the lock (%s) while a %s held it", held.name, waits.holder)
		}
		waits.unlock(e.b)
		if heldElsewhere(t, e.dir, e.id) {
			t.Errorf("lock still held after %s's unlock", waits.name)
		}
	}
}

// checkWriterPreference: a reader that arrives while a writer waits queues
// behind the writer, even though readers hold the lock.
func checkWriterPreference(t *testing.T, e rwEnv) {
	e.a.RLock()
	w := startLock(e.b)
	writerQueued(t, e.a)
	r := startRLock(e.a)
	if !r.blocked(t, "a writer was waiting when it came") {
		e.a.RUnlock()
		e.a.RUnlock()
		w.mustReturn(t, "the readers unlocked")
		e.b.Unlock()
		return
	}
	e.a.RUnlock()
	w.mustReturn(t, "the first reader unlocked")
	if r.blocked(t, "the writer holds the lock") {
		e.b.Unlock()
	}
	r.mustReturn(t, "the writer unlocked")
	e.a.RUnlock()
}

// checkTryRLock: TryRLock joins readers, fails against a writer that holds
// or waits, and takes a free lock.
func checkTryRLock(t *testing.T, e rwEnv) {
	if !e.a.TryRLock() {
		t.Fatal("TryRLock of a free lock failed")
	}
	if !e.b.TryRLock() {
		t.Fatal("TryRLock failed while only a reader held the lock")
	}
	if !canRLock(e.other) {
		t.Error("another Manager's TryRLock failed while only readers held the lock")
	}
	w := startLock(e.b)
	writerQueued(t, e.a)
	if canRLock(e.a) {
		t.Error("TryRLock succeeded while a writer waited")
	}
	e.a.RUnlock()
	e.b.RUnlock()
	w.mustReturn(t, "the readers unlocked")
	if canRLock(e.a) {
		t.Error("TryRLock succeeded while a writer held the lock")
	}
	e.b.Unlock()
	e.other.Lock()
	if canRLock(e.a) {
		t.Error("TryRLock succeeded while another Manager held the lock exclusively")
	}
	e.other.Unlock()
	if !e.a.TryRLock() {
		t.Fatal("TryRLock of a lock freed by another Manager failed")
	}
	e.a.RUnlock()
}

// checkCancelQueued: LockContext and RLockContext queued behind a holder
// in the process return ctx.Err() when cancelled and leave nothing held.
func checkCancelQueued(t *testing.T, e rwEnv) {
	e.a.Lock()
	ctx, cancel := context.WithCancel(t.Context())
	w := startLockContext(ctx, e.b)
	r := startRLockContext(ctx, e.b)
	w.blocked(t, "a writer holds the lock")
	r.blocked(t, "a writer holds the lock")
	begin := time.Now()
	cancel()
	for _, c := range []*call{w, r} {
		c.wantCanceled(t, "queued and cancelled")
	}
	t.Logf("cancelled queued callers returned within %v", time.Since(begin))
	e.a.Unlock()
	if heldElsewhere(t, e.dir, e.id) {
		t.Error("lock held after the holder unlocked and the queued callers were cancelled")
	}
	if !e.b.TryLock() {
		t.Fatal("TryLock failed after the queued callers were cancelled")
	}
	e.b.Unlock()
}

// checkCancelQueuedWriterAdmitsReaders: readers queued behind a waiting
// writer go in as soon as that writer is cancelled.
func checkCancelQueuedWriterAdmitsReaders(t *testing.T, e rwEnv) {
	e.a.RLock()
	ctx, cancel := context.WithCancel(t.Context())
	w := startLockContext(ctx, e.b)
	writerQueued(t, e.a)
	r := startRLock(e.b)
	r.blocked(t, "a writer waits")
	cancel()
	w.wantCanceled(t, "cancelled")
	r.mustReturn(t, "the writer it queued behind was cancelled")
	e.b.RUnlock()
	e.a.RUnlock()
	if heldElsewhere(t, e.dir, e.id) {
		t.Error("lock held after every reader's RUnlock")
	}
}

// checkCancelKernelWaiter: LockContext waiting in the kernel for another
// Manager's lock returns at once when cancelled; its kernel waiter then
// takes and releases the lock when the holder lets go.
func checkCancelKernelWaiter(t *testing.T, e rwEnv) {
	e.other.Lock()
	for _, md := range modes {
		ctx, cancel := context.WithCancel(t.Context())
		c := md.startContext(ctx, e.a)
		c.blocked(t, "another Manager holds the lock")
		begin := time.Now()
		cancel()
		c.wantCanceled(t, "cancelled in the kernel")
		t.Logf("%s cancelled in the kernel returned within %v", c.name, time.Since(begin))
	}
	e.other.Unlock()
	if !freeElsewhere(t, e.dir, e.id) {
		t.Fatal("lock still held long after the holder unlocked and every waiter was cancelled")
	}
	if !eventually(func() bool { return canLock(e.b) }) {
		t.Fatal("TryLock in the process kept failing after its cancelled waiters")
	}
}

// checkHandoffToWriter: a Lock queued behind a cancelled LockContext's
// kernel waiter gets the lock when the other Manager lets go.
func checkHandoffToWriter(t *testing.T, e rwEnv) {
	e.other.Lock()
	ctx, cancel := context.WithCancel(t.Context())
	c := startLockContext(ctx, e.a)
	c.blocked(t, "another Manager holds the lock")
	w := startLock(e.b)
	w.blocked(t, "another Manager holds the lock")
	cancel()
	c.wantCanceled(t, "cancelled")
	if w.blocked(t, "another Manager still holds the lock") {
		e.other.Unlock()
	}
	w.mustReturn(t, "the other Manager unlocked")
	if canRLock(e.other) {
		t.Error("another Manager shared the lock the handoff gave a writer")
	}
	e.b.Unlock()
	if heldElsewhere(t, e.dir, e.id) {
		t.Error("lock held after the writer's Unlock")
	}
}

// checkHandoffToReaders: readers queued behind a cancelled LockContext's
// kernel waiter get the lock shared (the waiter's LOCK_EX is released
// first, not converted) when the other Manager lets go.
func checkHandoffToReaders(t *testing.T, e rwEnv) {
	e.other.Lock()
	ctx, cancel := context.WithCancel(t.Context())
	c := startLockContext(ctx, e.a)
	c.blocked(t, "another Manager holds the lock")
	r1 := startRLock(e.b)
	r2 := startRLockContext(t.Context(), e.a)
	r1.blocked(t, "another Manager holds the lock")
	cancel()
	c.wantCanceled(t, "cancelled")
	e.other.Unlock()
	r1.mustReturn(t, "the other Manager unlocked")
	r2.mustReturn(t, "the other Manager unlocked")
	if !canRLock(e.other) {
		t.Error("another Manager could not share the lock that readers hold")
	}
	if canLock(e.other) {
		t.Error("another Manager took the lock exclusively while readers held it")
	}
	e.b.RUnlock()
	e.a.RUnlock()
	if heldElsewhere(t, e.dir, e.id) {
		t.Error("lock held after both readers' RUnlock")
	}
}

// checkKernelWaiterShared: RLockContext waits in the kernel; readers that
// queue meanwhile are admitted with it.
func checkKernelWaiterShared(t *testing.T, e rwEnv) {
	e.other.Lock()
	r1 := startRLockContext(t.Context(), e.a)
	r1.blocked(t, "another Manager holds the lock")
	r2 := startRLock(e.b)
	r2.blocked(t, "another Manager holds the lock")
	e.other.Unlock()
	r1.mustReturn(t, "the other Manager unlocked")
	r2.mustReturn(t, "the other Manager unlocked")
	if !sharedElsewhere(t, e.dir, e.id) {
		t.Error("another Manager could not share the lock that readers hold")
	}
	e.a.RUnlock()
	e.b.RUnlock()
	if heldElsewhere(t, e.dir, e.id) {
		t.Error("lock held after both readers' RUnlock")
	}
}

// checkMisuse: unlocking in the wrong mode, or when unlocked, panics and
// leaves the lock as it was.
func checkMisuse(t *testing.T, e rwEnv) {
	if panicValue(e.a.RUnlock) == nil {
		t.Error("RUnlock of an unlocked lock did not panic")
	}
	e.a.Lock()
	if panicValue(e.b.RUnlock) == nil {
		t.Error("RUnlock of a write-locked lock did not panic")
	}
	e.b.Unlock()
	e.a.RLock()
	if panicValue(e.b.Unlock) == nil {
		t.Error("Unlock of a read-locked lock did not panic")
	}
	if !canRLock(e.other) {
		t.Error("the lock is no longer read-locked after a misplaced Unlock")
	}
	e.b.RUnlock()
	if heldElsewhere(t, e.dir, e.id) {
		t.Error("lock held after RUnlock")
	}
}

// TestRWStress runs goroutines that take one lock through two Managers in
// every mode, with contexts that expire at random while queued or waiting
// in the kernel, and checks that a writer is always alone.
func TestRWStress(t *testing.T) {
	t.Parallel()
	const goroutines, rounds = 8, 300
	m1 := create(t, 10)
	m2 := open(t, m1.Dir())
	lockers := []*filelock.Locker{mustRetrieve(t, m1, 4), mustRetrieve(t, m1, 4), mustRetrieve(t, m2, 4), mustRetrieve(t, m2, 4)}
	var writers, readers, bad, taken atomic.Int32
	enter := func(write bool) {
		taken.Add(1)
		if write {
			if writers.Add(1) != 1 || readers.Load() != 0 {
				bad.Add(1)
			}
		} else {
			readers.Add(1)
			if writers.Load() != 0 {
				bad.Add(1)
			}
		}
	}
	leave := func(write bool) {
		if write {
			writers.Add(-1)
		} else {
			readers.Add(-1)
		}
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			l := lockers[g%len(lockers)]
			for range rounds {
				write := rng.IntN(3) == 0
				md := shared
				if write {
					md = exclusive
				}
				ok := true
				switch rng.IntN(3) {
				case 0:
					md.lock(l)
				case 1:
					ok = md.try(l)
				case 2:
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(300))*time.Microsecond)
					err := md.lockContext(l, ctx)
					cancel()
					if err != nil && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("context lock: %v", err)
					}
					ok = err == nil
				}
				if !ok {
					continue
				}
				enter(write)
				if rng.IntN(2) == 0 {
					time.Sleep(time.Duration(rng.IntN(100)) * time.Microsecond)
				}
				leave(write)
				md.unlock(l)
			}
		})
	}
	wg.Wait()
	t.Logf("%d holds", taken.Load())
	if n := bad.Load(); n > 0 {
		t.Errorf("%d times a writer was not alone", n)
	}
	if !freeElsewhere(t, m1.Dir(), 4) {
		t.Error("lock still held after every goroutine finished")
	}
	for _, l := range lockers {
		if !eventually(func() bool { return canLock(l) }) {
			t.Error("TryLock kept failing after every goroutine finished")
		}
	}
}

// TestSharedAcrossProcesses checks that RLock holders in two processes
// coexist, with this process's reader too, and exclude a Lock in a third
// until both let go; and that a writer in another process excludes them.
func TestSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	dir := m.Dir()
	l := mustRetrieve(t, m, 5)
	r1, r2, w := startRW(t, dir, 5), startRW(t, dir, 5), startRW(t, dir, 5)
	r1.Send("sh")
	r1.Expect("locked", patience)
	r2.Send("sh")
	r2.Expect("locked", patience) // stops the test if r2 is never let in
	if !canRLock(l) {
		t.Error("TryRLock failed while only readers in other processes hold the lock")
	}
	if canLock(l) {
		t.Error("TryLock succeeded while readers in other processes hold the lock")
	}
	w.Send("ex")
	if w.Quiet(blockWindow, "readers in two other processes hold the lock") {
		r1.Send("run")
		r1.Expect("unlocked", patience)
		w.Quiet(blockWindow, "a reader in another process still holds the lock")
		r2.Send("run")
		r2.Expect("unlocked", patience)
	}
	w.Expect("locked", patience)
	r1.Send("sh")
	if r1.Quiet(blockWindow, "a writer in another process holds the lock") {
		if canRLock(l) {
			t.Error("TryRLock succeeded while a writer in another process holds the lock")
		}
		w.Send("un")
		w.Expect("unlocked", patience)
	}
	r1.Expect("locked", patience)
	r1.Send("run")
	r1.Expect("unlocked", patience)
	for _, c := range []*childproc.Child{r1, r2, w} {
		c.Wait(childExit)
	}
	if heldElsewhere(t, dir, 5) {
		t.Error("lock held after every child exited")
	}
}
