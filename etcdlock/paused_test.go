package etcdlock_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/etcdlock"
)

// TestPausedWaiterQueuesAgain is a waiter paused past its TTL, made
// deterministic: a proxy holds back every byte between waiter B and etcd,
// as if B were stopped, while A unlocks, B's lease is revoked (as its
// expiry would) and C takes the lock; then it lets them through, in order.
// B's watch reports A's deletion before its own key's, and B must not take
// the lock from that: C holds it. B must queue again and get the lock once
// C unlocks. (Found by review: without the check of its own key,
// stillQueued, B took the lock beside C.)
func TestPausedWaiterQueuesAgain(t *testing.T) {
	a := newManager(t, 4)
	direct := newClient(t)
	p, viaProxy := newProxiedClient(t)
	b, err := etcdlock.New(viaProxy, a.Prefix(), 0, etcdlock.WithTTL(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cm, err := etcdlock.New(direct, a.Prefix(), 0, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cm.Close() })

	la, lb, lc := locker(t, a, 1), locker(t, b, 1), locker(t, cm, 1)
	la.Lock()
	got := make(chan error, 1)
	go func() { got <- lb.LockContext(context.Background()) }()
	var bLease int64
	for deadline := time.Now().Add(10 * time.Second); bLease == 0; time.Sleep(10 * time.Millisecond) {
		resp, err := direct.Get(context.Background(), a.Prefix()+"lock/", clientv3.WithPrefix())
		if err == nil && len(resp.Kvs) == 2 {
			bLease = resp.Kvs[1].Lease
		}
		if time.Now().After(deadline) {
			t.Fatal("B did not queue")
		}
	}
	time.Sleep(200 * time.Millisecond) // B's watch is in place

	p.Hold()
	la.Unlock()
	if _, err := direct.Revoke(context.Background(), clientv3.LeaseID(bLease)); err != nil {
		t.Fatal(err)
	}
	if !lc.TryLock() {
		t.Fatal("C could not take the lock that A freed and B lost")
	}
	p.Release()

	select {
	case err := <-got:
		t.Fatalf("B's LockContext returned %v while C held the lock", err)
	case <-time.After(2 * time.Second):
	}
	lc.Unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("B's LockContext after C unlocked: %v", err)
		}
		lb.Unlock()
	case <-time.After(20 * time.Second):
		t.Fatal("B did not get the lock after C unlocked")
	}
}
