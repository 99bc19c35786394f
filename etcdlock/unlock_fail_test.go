package etcdlock_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/lockdir/lockdir/etcdlock"
)

// failingDeletes is a gRPC interceptor that fails the next n deletes
// (DeleteRange requests, and transactions that delete a holder key if it
// is still the hold's) before they reach etcd, as a request that times
// out would.
type failingDeletes struct{ n atomic.Int32 }

func (f *failingDeletes) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	del := method == "/etcdserverpb.KV/DeleteRange" || (method == "/etcdserverpb.KV/Txn" && isHolderDelete(req))
	if del && f.n.Add(-1) >= 0 {
		return context.DeadlineExceeded
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// interceptedManager returns a Manager of 4 locks on a client of its own
// whose unary requests go through intercept; both are closed at the end
// of the test.
func interceptedManager(t *testing.T, intercept grpc.UnaryClientInterceptor) *etcdlock.Manager {
	t.Helper()
	cli := newClientWith(t, grpc.WithChainUnaryInterceptor(intercept))
	t.Cleanup(func() { cli.Close() })
	m, err := etcdlock.New(cli, newPrefix(t), 4, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestUnlockDeleteFails checks what Unlock does when deleting its holder
// key fails: it retries in the background while the session lives, so
// the lock is freed once etcd answers, the other locks held through the
// Manager stay held (their Lost stays open), and a new Lock of the same ID
// in this process waits for the delete, so that it never adopts the old
// key and its token.
func TestUnlockDeleteFails(t *testing.T) {
	var f failingDeletes
	m := interceptedManager(t, f.intercept)
	other, err := openOwned(addr(m))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	l1, l2 := locker(t, m, 1), locker(t, m, 2)
	l1.Lock()
	l2.Lock()
	first := l1.Token()
	lost2 := l2.Lost()
	f.n.Store(3) // the delete and two retries fail
	l1.Unlock()
	// While the delete is retried, the old key is still there under the
	// name a new hold of this Manager would use: a Lock must not adopt it.
	if l1.TryLock() {
		if l1.Token() == first {
			t.Fatalf("TryLock after the failed delete adopted the old key, token %d", first)
		}
		l1.Unlock()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o1 := locker(t, other.Manager, 1)
	if err := o1.LockContext(ctx); err != nil {
		t.Fatalf("lock 1 not free after its Unlock's delete failed: %v", err)
	}
	if f.n.Load() >= 0 {
		t.Fatalf("lock 1 taken with %d failures still to come", f.n.Load()+1)
	}
	select {
	case <-lost2:
		t.Fatal("lock 2 was lost because lock 1's delete failed")
	case <-time.After(testTTL):
	}
	// This process's next Lock of 1 queues behind the other holder with a
	// new key: a larger token.
	relocked := make(chan error, 1)
	go func() { relocked <- l1.LockContext(ctx) }()
	time.Sleep(50 * time.Millisecond)
	second := o1.Token()
	o1.Unlock()
	if err := <-relocked; err != nil {
		t.Fatal(err)
	}
	if !(first < second && second < l1.Token()) {
		t.Errorf("tokens %d, %d, %d; want them to increase", first, second, l1.Token())
	}
	l1.Unlock()
	l2.Unlock()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("ran out of time")
	}
}
