package etcdlock_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/lockdir/lockdir/etcdlock"
)

// TestSlowGrantLapses (review 16, fixed in Manager.session): the
// session's deadline counts the TTL from
// when the grant was sent, but Manager.session returns the new session
// without checking it: a grant that waited longer than the TTL before it
// was sent (the client was reconnecting: gRPC waits for a connection, up
// to the request timeout, 5 s by default, longer than a TTL of 1 to 4 s
// that WithTTL and --ttl allow) makes a session that lapses as it is
// made. Its lapse revokes the lease in the background while Lock puts
// its holder key with it; when the put wins, LockContext returns nil with
// Lost already closed and the key about to be revoked: a lock that
// Lock's caller (the contract's Lock has no error and no Lost) believes
// it holds, and that another process can take at once. Here the grant is
// held back before it is sent, as a reconnection would, for the TTL plus
// half a second, once.
func TestSlowGrantLapses(t *testing.T) {
	bad := 0
	const runs = 5
	for i := 0; i < runs; i++ {
		var slow atomic.Bool
		slow.Store(true)
		unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if method == "/etcdserverpb.Lease/LeaseGrant" && slow.CompareAndSwap(true, false) {
				time.Sleep(testTTL + 500*time.Millisecond)
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		cli, err := clientv3.New(clientv3.Config{
			Endpoints: server.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
			DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary)},
		})
		if err != nil {
			t.Fatal(err)
		}
		m, err := etcdlock.New(cli, newPrefix(t), 4, etcdlock.WithTTL(testTTL))
		if err != nil {
			t.Fatal(err)
		}
		l := locker(t, m, 1)
		if err := l.LockContext(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-l.Lost():
			bad++
			if bad == 1 {
				// Another process takes the lock that LockContext just
				// returned as held.
				m2, err := openOwned(addr(m))
				if err != nil {
					t.Fatal(err)
				}
				kc := newClient(t)
				r, _ := kc.Get(context.Background(), m.Prefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
				for _, kv := range r.Kvs {
					t.Logf("key %s lease %x", kv.Key, kv.Lease)
				}
				l2 := locker(t, m2.Manager, 1)
				for j := 0; j < 20; j++ {
					if l2.TryLock() {
						t.Logf("another process took lock 1 %d ms after LockContext returned it as held here", j*50)
						l2.Unlock()
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				m2.Close()
			}
		default:
		}
		l.Unlock()
		m.Close()
		cli.Close()
	}
	if bad > 0 {
		t.Errorf("LockContext returned nil with Lost already closed in %d of %d runs after a grant that waited longer than the TTL to be sent", bad, runs)
	}
}
