package etcdlock_test

import (
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock"
)

// TestLaggingWatch has a waiter whose watch replays the lock directory's
// history, as one served by a member that lags behind does, while the
// holder has unlocked and locked again with the same session, so that the
// history holds deletions of the very key that holds the lock now. The
// waiter must skip deletions its read already reflects and keep waiting.
// (The 3-member cluster test found this: a watch on a restarted member
// let a second holder in.)
func TestLaggingWatch(t *testing.T) {
	etcdlock.SetLaggingWatch(true)
	defer etcdlock.SetLaggingWatch(false)
	m1 := newManager(t, 4)
	m2, err := openOwned(addr(m1))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	holder, waiter := locker(t, m1, 0), locker(t, m2.Manager, 0)
	for range 3 {
		holder.Lock()
		holder.Unlock()
	}
	holder.Lock()
	got := make(chan struct{})
	go func() {
		waiter.Lock()
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a waiter took the lock while another manager held it")
	case <-time.After(500 * time.Millisecond):
	}
	held := holder.Token()
	holder.Unlock()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter did not get the lock within 10 s of the holder's Unlock")
	}
	if waiter.Token() <= held {
		t.Errorf("waiter's token %d not above the holder's, %d", waiter.Token(), held)
	}
	waiter.Unlock()
}
