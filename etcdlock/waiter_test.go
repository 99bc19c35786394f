package etcdlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock"
)

// TestWaiterSessionEndedClientSide is the regression test of commit
// 35cb5d2: a waiter whose session ends on the client's side only (its
// keepalives stop, while etcd still holds the lease) must revoke that
// lease. Otherwise its key stays queued until the lease's TTL runs out,
// and when the holder unlocks, that key, which no one waits on any more,
// holds the lock for the rest of the TTL.
func TestWaiterSessionEndedClientSide(t *testing.T) {
	const ttl = 60 * time.Second // far longer than the test waits
	holder := newManager(t, 4, etcdlock.WithTTL(ttl))
	waiterCli := newClient(t)
	waiter, err := etcdlock.New(waiterCli, holder.Prefix(), 0, etcdlock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	third, err := openOwned(addr(holder))
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()

	lh := locker(t, holder, 2)
	lh.Lock()
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	lw := locker(t, waiter, 2)
	go func() { waited <- lw.LockContext(ctx) }()
	defer func() {
		cancel()
		<-waited
	}()
	waitFor := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			hs, err := holder.Holders()
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: holder keys %+v after 10 s, want %d (the lease's TTL is %v)", what, hs, n, ttl)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the waiter queued", 2)

	// Stop the waiter's keepalives: its session is done on the client's
	// side, but etcd keeps the lease for the TTL. The waiter cannot get a
	// new session on this client, so it does not queue again.
	waiterCli.Lease.Close()
	waitFor("the waiter's session ended", 1)

	lh.Unlock()
	if !locker(t, third.Manager, 2).TryLock() {
		hs, _ := holder.Holders()
		t.Fatalf("lock 2 still held after its holder unlocked; holder keys %+v", hs)
	}
	locker(t, third.Manager, 2).Unlock()
}
