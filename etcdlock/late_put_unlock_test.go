package etcdlock_test

import (
	"context"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/lockdir/lockdir/etcdlock"
)

// delayedPut is a gRPC interceptor that makes the first holder-key
// transaction time out for the client while etcd applies it later, when
// told: what a request does when it waits on a slow or lagging member (a
// follower whose forwarded proposal is late, an fsync stall), since a
// client's timeout does not withdraw a proposal. Its outcome is unknown
// to the client, and it may be applied after the client's later requests.
type delayedPut struct {
	once    sync.Once
	apply   chan struct{} // closed to let the held-back transaction through
	applied chan error
}

func (p *delayedPut) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if r, ok := req.(*pb.TxnRequest); ok && method == "/etcdserverpb.KV/Txn" && len(r.Success) > 0 {
		if put := r.Success[0].GetRequestPut(); put != nil && put.Lease != 0 {
			late := false
			p.once.Do(func() { late = true })
			if late {
				go func() {
					<-p.apply
					p.applied <- invoker(context.Background(), method, req, new(pb.TxnResponse), cc, opts...)
				}()
				return context.DeadlineExceeded
			}
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// TestLatePutAfterUnlock (review 10c): acquireIn's first transaction times
// out but is applied later, after the retry that took the lock and after
// the Unlock that deleted the key. Its compare (CreateRevision(key) = 0)
// holds again once the key is deleted, so it makes the holder key anew:
// a ghost holder, bound to the Manager's session, which the Manager keeps
// alive for as long as it lives. Nobody holds lock 1, yet no other
// process can take it until this one closes its Manager or exits. (The
// withdraw after the failed transaction ran too early to catch it; the
// design's "adopt the key on retry" covers a put applied before the
// retry, not one applied after the Unlock.)
func TestLatePutAfterUnlock(t *testing.T) {
	p := &delayedPut{apply: make(chan struct{}), applied: make(chan error, 1)}
	cli := newClientWith(t, grpc.WithChainUnaryInterceptor(p.intercept))
	m, err := etcdlock.New(cli, newPrefix(t), 4, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l := locker(t, m, 1)
	l.Lock() // the first transaction "times out"; the retry takes the lock
	l.Unlock()
	close(p.apply)
	if err := <-p.applied; err != nil {
		t.Fatalf("the late transaction: %v", err)
	}
	held, err := m.LocksHeld()
	t.Logf("after the Unlock and the late transaction, LocksHeld (nothing is allocated, so it shows nothing): %v, %v", held, err)
	hs, _ := m.Holders()
	t.Logf("holder keys: %+v", hs)
	other, err := openOwned(addr(m))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*testTTL)
	defer cancel()
	l2 := locker(t, other.Manager, 1)
	if err := l2.LockContext(ctx); err != nil {
		t.Fatalf("another process cannot take lock 1, which nobody holds, within 3 TTLs: %v", err)
	}
	l2.Unlock()
}
