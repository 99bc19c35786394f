package etcdlock_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/etcdlock"
)

// TestTryLockAfterLeaseRevoked (review 10c): TryLock's doc says it panics
// only if the Manager is closed or etcd does not answer within the
// timeout. When the Manager's session lease has ended on the server (it
// was revoked, or it expired while this process was paused or cut off)
// and the client has not yet noticed (it does at its next keepalive,
// up to TTL/3 later), TryLock's put names a lease etcd no longer has:
// etcd answers "requested lease not found", and TryLock panics with it,
// although etcd answered at once and a new session would take the free
// lock. Lock and LockContext retry the same answer; TryLock should too
// (acquire treats it as errSessionLost: abandon the session, grant a new
// one).
func TestTryLockAfterLeaseRevoked(t *testing.T) {
	cli := newClient(t)
	// Closed by hand: Close fails on a revoked lease
	// (TestCloseAfterLeaseLost), which is not what this test is about.
	m, err := etcdlock.New(newClient(t), newPrefix(t), 4, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l := locker(t, m, 1)
	l.Lock() // makes the session
	resp, err := cli.Get(context.Background(), m.Prefix()+"lock/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("holder keys: %v, %v", resp, err)
	}
	l.Unlock()
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	other := locker(t, m, 2)
	var got bool
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("TryLock of a free lock after the session's lease was revoked panicked: %v", r)
			}
		}()
		got = other.TryLock()
	}()
	if got {
		other.Unlock()
	} else if !t.Failed() {
		t.Error("TryLock of a free lock returned false")
	}
}

// TestCloseAfterLeaseLost (review 10c): Close after the session's lease
// ended (revoked here; expired after a partition or a pause alike), and
// after Lost said so, fails with "requested lease not found": it revokes a
// lease that is gone. Nothing failed: every lock of the session is already
// free. A caller that reports Close's error (Podman's runtime shutdown,
// lockdir) reports an error that did not happen.
func TestCloseAfterLeaseLost(t *testing.T) {
	cli := newClient(t)
	m, err := etcdlock.New(newClient(t), newPrefix(t), 4, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	l := locker(t, m, 1)
	l.Lock()
	lost := l.Lost()
	resp, err := cli.Get(context.Background(), m.Prefix()+"lock/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("holder keys: %v, %v", resp, err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(2 * testTTL):
		t.Fatal("Lost not closed after the lease was revoked")
	}
	l.Unlock()
	if err := m.Close(); err != nil {
		t.Errorf("Close after the lease was lost: %v", err)
	}
}
