package etcdlock_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
)

// TestWaiterSurvivesCompaction breaks a waiter's connection for a moment
// (a member restart, a load balancer, a network blip) while etcd compacts
// past the revision its watch started at: when the client resumes the
// watch, etcd answers "required revision has been compacted", code
// OutOfRange. That is no refusal of the request: the waiter must queue
// again on a new watch and get the lock when its holder unlocks. (A review
// found that refused() counted every OutOfRange as permanent, and ended
// the wait; etcd clusters compact all the time.)
func TestWaiterSurvivesCompaction(t *testing.T) {
	c, err := etcdtest.Start(t.TempDir(), 1, etcdtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	direct, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	p := etcdtest.StartTCPProxy(t, strings.TrimPrefix(c.Endpoints()[0], "http://"))
	viaProxy, err := etcdtest.NewClient([]string{p.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()

	const prefix = "/compact-test/"
	mA, err := etcdlock.New(direct, prefix, 4, etcdlock.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer mA.Close()
	mB, err := etcdlock.New(viaProxy, prefix, 4, etcdlock.WithTTL(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer mB.Close()
	lA, lB := locker(t, mA, 1), locker(t, mB, 1)
	lA.Lock()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() { got <- lB.LockContext(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		hs, err := mA.Holders()
		if err == nil && len(hs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B did not queue: %v %v", hs, err)
		}
	}
	time.Sleep(200 * time.Millisecond) // B's watch is in place

	// The blip: B's connections drop; meanwhile the cluster moves on and
	// compacts, as it does on its own schedule.
	p.Cut()
	for i := 0; i < 10; i++ {
		if _, err := direct.Put(context.Background(), "/unrelated/key", "x"); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := direct.Get(context.Background(), "/unrelated/key")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Compact(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	p.Heal()

	select {
	case err := <-got:
		t.Fatalf("B's wait ended while A still holds the lock, after a reconnect and a compaction: %v", err)
	case <-time.After(5 * time.Second):
	}
	lA.Unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("B's LockContext: %v", err)
		}
		lB.Unlock()
	case <-time.After(20 * time.Second):
		t.Fatal("B did not take the lock 20 s after A unlocked")
	}
}
