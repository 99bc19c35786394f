package etcdlock_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// latePut is a gRPC interceptor that holds the first transaction putting a
// holder key until the caller gives up on it (its context ends), and has
// etcd apply it later, when told: the premise of lateDelete, for the put.
// A client's timeout or cancellation does not withdraw a proposal, and a
// client spreads its requests over the cluster's members, so the put can
// reach the leader after the delete that was sent after it.
type latePut struct {
	once    sync.Once
	apply   chan struct{}
	applied chan error
	now     bool // fail the put at once, as a timeout would, instead of when the caller gives up
}

func (d *latePut) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if isHolderPut(req) {
		late := false
		d.once.Do(func() { late = true })
		if late {
			if d.now {
				go func() {
					<-d.apply
					d.applied <- invoker(context.Background(), method, req, new(pb.TxnResponse), cc, opts...)
				}()
				return context.DeadlineExceeded
			}
			<-ctx.Done()
			go func() {
				<-d.apply
				d.applied <- invoker(context.Background(), method, req, new(pb.TxnResponse), cc, opts...)
			}()
			return ctx.Err()
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// isHolderPut reports whether req is acquireIn's transaction, which puts a
// holder key unless it exists.
func isHolderPut(req any) bool {
	r, ok := req.(*pb.TxnRequest)
	if !ok {
		return false
	}
	for _, op := range r.Success {
		if put := op.GetRequestPut(); put != nil && strings.Contains(string(put.Key), "/lock/") {
			return true
		}
	}
	return false
}

// TestLatePutAfterWithdraw (review 11b): a LockContext whose context ends
// while its put is in flight withdraws the key with an unconditional
// delete (withdraw(s, key, 0), "its revision is unknown") and returns the
// context's error, holding nothing. If etcd applies the put after that
// delete, the key is there for good: bound to the Manager's live session,
// whose keepalives go on, and no goroutine in this process knows of it.
// It holds the lock cluster-wide, not for a TTL but for as long as the
// process lives: a ghost holder (every other process waits for ever;
// Token and Lost here say the lock is not held).
func TestLatePutAfterWithdraw(t *testing.T) {
	d := &latePut{apply: make(chan struct{}), applied: make(chan error, 1)}
	m := interceptedManager(t, d.intercept)
	l := locker(t, m, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := l.LockContext(ctx)
	cancel()
	if err == nil {
		t.Fatal("LockContext took the lock with its put held back")
	}
	t.Logf("LockContext: %v", err)
	close(d.apply)
	if err := <-d.applied; err != nil {
		t.Fatalf("the late put: %v", err)
	}
	if tok := l.Token(); tok != 0 {
		t.Fatalf("Token = %d after a failed LockContext, want 0", tok)
	}
	// Three TTLs: a key left to expire with a lease would be gone by then.
	wait := 3 * testTTL
	l2, err := lockFromOther(t, m, 1, wait)
	if err != nil {
		t.Errorf("another process could not take lock 1 within %v (3 TTLs) although nobody locked it: a key of this process's session, put after its withdraw, holds it: %v", wait, err)
		return
	}
	l2.Unlock()
}

// lockFromOther takes lock id through a Manager of its own on m's etcd, as
// another process would, within wait. The Manager is closed at the end of
// the test.
func lockFromOther(t *testing.T, m *etcdlock.Manager, id uint32, wait time.Duration) (*etcdlock.Locker, error) {
	t.Helper()
	other, err := openOwned(addr(m))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	l := locker(t, other.Manager, id)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return l, l.LockContext(ctx)
}

// TestLatePutAfterLockUnlock (review 11b): the same with Lock, which
// retries: its first put "times out" (etcd applies it later), withdraw's
// unconditional delete finds nothing, the retry's put takes the lock, and
// Unlock deletes that key. Then etcd applies the first put: the key is
// missing, so the put's compare passes and the key is made again, bound
// to the live session. Nobody in this process holds lock 1, yet no other
// process can take it for as long as this one lives.
func TestLatePutAfterLockUnlock(t *testing.T) {
	d := &latePut{apply: make(chan struct{}), applied: make(chan error, 1), now: true}
	m := interceptedManager(t, d.intercept)
	l := locker(t, m, 1)
	l.Lock()
	l.Unlock()
	close(d.apply)
	if err := <-d.applied; err != nil {
		t.Fatalf("the late put: %v", err)
	}
	wait := 3 * testTTL
	l2, err := lockFromOther(t, m, 1, wait)
	if err != nil {
		t.Errorf("another process could not take lock 1 within %v (3 TTLs) after this one's Lock and Unlock: the late put of Lock's first attempt holds it: %v", wait, err)
		return
	}
	l2.Unlock()
}
