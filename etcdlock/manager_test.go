package etcdlock_test

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
	"github.com/lockdir/lockdir/lock"
)

// locker retrieves lock id of m as an *etcdlock.Locker.
func locker(t testing.TB, m *etcdlock.Manager, id uint32) *etcdlock.Locker {
	t.Helper()
	l, err := m.Retrieve(id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestBadIDs passes IDs at and beyond the capacity: the errors match
// filelock's sentinels.
func TestBadIDs(t *testing.T) {
	m := newManager(t, 4)
	for _, id := range []uint32{4, 5, 1 << 20, math.MaxUint32} {
		// The lock.Manager methods return a nil interface, not a nil
		// *Locker in one, with their error.
		l, err := m.RetrieveLock(id)
		if !errors.Is(err, lock.ErrInvalidID) || l != nil {
			t.Errorf("RetrieveLock(%d): %v, %v; want a nil Locker and lock.ErrInvalidID", id, l, err)
		}
		l, err = m.AllocateAndRetrieveLock(id)
		if !errors.Is(err, lock.ErrInvalidID) || l != nil {
			t.Errorf("AllocateAndRetrieveLock(%d): %v, %v; want a nil Locker and lock.ErrInvalidID", id, l, err)
		}
		if _, err := m.Retrieve(id); !errors.Is(err, lock.ErrInvalidID) {
			t.Errorf("Retrieve(%d): %v, want lock.ErrInvalidID", id, err)
		}
	}
	if err := locker(t, m, 2).Free(); !errors.Is(err, lock.ErrNotAllocated) {
		t.Errorf("Free of an unallocated lock: %v, want lock.ErrNotAllocated", err)
	}
}

// TestCapacityMismatch joins a space with another capacity: as with
// filelock.OpenOrCreate, the stored capacity wins; 0 joins only.
func TestCapacityMismatch(t *testing.T) {
	cli := newClient(t)
	prefix := newPrefix(t)
	if _, err := etcdlock.New(cli, prefix, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("New with capacity 0 of a missing space: %v, want fs.ErrNotExist", err)
	}
	m1, err := etcdlock.New(cli, prefix, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	for _, n := range []uint32{0, 4, 16} {
		m2, err := etcdlock.New(cli, prefix, n)
		if err != nil {
			t.Fatalf("New(%d) of a space of 8: %v", n, err)
		}
		if got := m2.Capacity(); got != 8 {
			t.Errorf("New(%d) of a space of 8: Capacity = %d", n, got)
		}
		if _, err := m2.RetrieveLock(8); !errors.Is(err, lock.ErrInvalidID) {
			t.Errorf("New(%d) of a space of 8: RetrieveLock(8): %v", n, err)
		}
		m2.Close()
	}
}

// TestPrefixRefused makes lock spaces under prefixes that hold foreign keys
// or overlap another space: New refuses each.
func TestPrefixRefused(t *testing.T) {
	cli := newClient(t)
	base := newPrefix(t)
	put := func(k, v string) {
		if _, err := cli.Put(context.Background(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	put(base+"foreign/x", "not ours")
	put(base+"foreign2/meta", "junk")
	outer, err := etcdlock.New(cli, base+"outer", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	inner, err := etcdlock.New(cli, base+"clean/inner", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	for _, tc := range []struct {
		name, prefix string
		n            uint32
		why          string
	}{
		{"ForeignKeys", base + "foreign", 4, "not a lock space's"},
		{"ForeignKeysJoin", base + "foreign", 0, "not a lock space's"},
		{"BadMeta", base + "foreign2", 4, "not a lock space header"},
		{"InsideAnother", base + "outer/inner", 4, "overlaps the lock space"},
		{"InsideAnotherDir", base + "outer/lock/", 4, "overlaps the lock space"},
		{"AroundAnother", base + "clean", 4, "not a lock space's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := etcdlock.New(cli, tc.prefix, tc.n)
			if err == nil {
				m.Close()
				t.Fatalf("New(%q) succeeded", tc.prefix)
			}
			if !errors.Is(err, lock.ErrCorrupt) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("New(%q): %v, want lock.ErrCorrupt saying %q", tc.prefix, err, tc.why)
			}
		})
	}
	// Refusals wrote nothing: the outer space is still whole.
	if n, err := outer.AvailableLocks(); err != nil || *n != 4 {
		t.Errorf("outer space after refusals: AvailableLocks = %v, %v", n, err)
	}
}

// TestUnreachable points a client at a port nothing listens on: New fails
// within about the timeout, with an error that says so.
func TestUnreachable(t *testing.T) {
	cli, err := etcdtest.NewClient([]string{"http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	const timeout = 500 * time.Millisecond
	start := time.Now()
	_, err = etcdlock.New(cli, "/lockdir-test/unreachable/", 4, etcdlock.WithTimeout(timeout))
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("New on an unreachable endpoint: %v, want a deadline error naming the endpoint", err)
	}
	if took > 10*timeout {
		t.Errorf("New on an unreachable endpoint took %v with a timeout of %v", took, timeout)
	}
}

// TestClosed calls methods of a closed Manager: each fails with
// lock.ErrClosed, and Lock panics with it.
func TestClosed(t *testing.T) {
	m := newManager(t, 4)
	l := locker(t, m, 1)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AllocateLock(); !errors.Is(err, lock.ErrClosed) {
		t.Errorf("AllocateLock: %v", err)
	}
	if _, err := m.LocksHeld(); !errors.Is(err, lock.ErrClosed) {
		t.Errorf("LocksHeld: %v", err)
	}
	if err := l.LockContext(context.Background()); !errors.Is(err, lock.ErrClosed) {
		t.Errorf("LockContext: %v", err)
	}
	func() {
		defer func() {
			if p, _ := recover().(error); !errors.Is(p, lock.ErrClosed) {
				t.Errorf("Lock of a closed manager panicked with %v, want lock.ErrClosed", p)
			}
		}()
		l.Lock()
	}()
}

// TestTokenIncreases locks one ID through two managers in turn: each hold's
// token is larger than the one before, and Token is 0 when not held.
func TestTokenIncreases(t *testing.T) {
	m1 := newManager(t, 4)
	m2, err := openOwned(addr(m1))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	ls := []*etcdlock.Locker{locker(t, m1, 3), locker(t, m2.Manager, 3)}
	var last int64
	for i := range 6 {
		l := ls[i%2]
		if tok := l.Token(); tok != 0 {
			t.Errorf("Token of an unheld lock = %d", tok)
		}
		l.Lock()
		tok := l.Token()
		if tok <= last {
			t.Errorf("hold %d: token %d, not above the last, %d", i, tok, last)
		}
		last = tok
		l.Unlock()
	}
}

// TestLockContextCancel cancels a LockContext waiting for a held lock: it
// returns the context's error and leaves no waiter key behind, so the lock
// passes straight to the next Lock after the holder unlocks.
func TestLockContextCancel(t *testing.T) {
	m1 := newManager(t, 4)
	m2, err := openOwned(addr(m1))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	holder, waiter := locker(t, m1, 0), locker(t, m2.Manager, 0)
	holder.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := waiter.LockContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LockContext of a held lock: %v, want context.DeadlineExceeded", err)
	}
	if waiter.TryLock() {
		t.Fatal("TryLock of a held lock succeeded")
	}
	holder.Unlock()
	if !waiter.TryLock() {
		t.Fatal("TryLock after the holder unlocked failed: a canceled waiter's key is left")
	}
	waiter.Unlock()
}

// TestLost revokes the session lease of a holder, as etcd does when the
// holder cannot keep it alive: Lost fires, another manager gets the lock
// with a larger token, and Unlock of the lost lock returns without
// panicking.
func TestLost(t *testing.T) {
	cli := newClient(t)
	m1 := newManager(t, 4)
	m2, err := openOwned(addr(m1))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	l1, l2 := locker(t, m1, 1), locker(t, m2.Manager, 1)
	select {
	case <-l1.Lost():
	default:
		t.Error("Lost of an unheld lock is not closed")
	}
	l1.Lock()
	lost := l1.Lost()
	select {
	case <-lost:
		t.Fatal("Lost closed right after Lock")
	case <-time.After(100 * time.Millisecond):
	}
	leases, err := cli.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Find the holder's lease by its key, and revoke it.
	resp, err := cli.Get(context.Background(), m1.Prefix()+"lock/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("holder keys: %v, %v", resp, err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	found := false
	for _, ls := range leases.Leases {
		found = found || ls.ID == lease
	}
	if !found {
		t.Fatalf("holder key's lease %x is not among the server's leases", lease)
	}
	revoked := time.Now()
	if _, err := cli.Revoke(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
		t.Logf("Lost closed %v after the lease was revoked", time.Since(revoked))
	case <-time.After(2 * testTTL):
		t.Fatalf("Lost not closed %v after the lease was revoked", 2*testTTL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l2.LockContext(ctx); err != nil {
		t.Fatalf("Lock by another manager after the lease was revoked: %v", err)
	}
	if l2.Token() <= l1.Token() {
		t.Errorf("token after the loss %d, not above the lost hold's %d", l2.Token(), l1.Token())
	}
	l1.Unlock()
	l2.Unlock()
	// The first manager recovers with a new session.
	l1.Lock()
	l1.Unlock()
}

// TestLockRefusedByEtcd asks for a lease TTL above etcd's largest, which
// etcd refuses on every grant: LockContext on a free lock must return that
// refusal, not retry it until its context ends (found by review), and Lock
// would have retried it for ever.
func TestLockRefusedByEtcd(t *testing.T) {
	m := newManager(t, 4, etcdlock.WithTTL(2562047*time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := locker(t, m, 1).LockContext(ctx)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "lease TTL") {
		t.Fatalf("LockContext with a TTL etcd refuses: %v (context: %v), want etcd's refusal at once", err, ctx.Err())
	}
}
