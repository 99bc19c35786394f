package etcdlock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/lockdir/lockdir/etcdlock"
)

// gatedStream holds back every keepalive answer while gate is closed off.
type gatedStream struct {
	grpc.ClientStream
	gate func() <-chan struct{}
}

func (s gatedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	<-s.gate()
	return err
}

// TestLockOnLapsedSession (review 16, fixed by heldAlive in mutex.go):
// docs/etcd.md says "Check, Lock,
// TryLock and Unlock read the clock against the deadline as well (no
// request), so none of them acts on a session whose deadline has passed".
// Lock reads it only before its put (in Manager.session): if the session's
// deadline passes while the put's transaction is in flight (a slow answer,
// and the keepalive answers late too), acquireIn returns the hold anyway,
// and LockContext returns nil for a lock whose session ended before it
// returned: Lost is already closed, the lease is being revoked in the
// background (so another process may take the lock at once), and a
// caller of the contract's Lock, which has no error and no Lost, goes on
// as the holder. acquire should check the session after the put, as it
// does for errSessionLost, and start again on a new session.
func TestLockOnLapsedSession(t *testing.T) {
	var mu sync.Mutex
	open := make(chan struct{})
	close(open)
	gate := open
	getGate := func() <-chan struct{} { mu.Lock(); defer mu.Unlock(); return gate }
	held := make(chan struct{})
	var once sync.Once
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !isHolderPut(req) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		mu.Lock()
		gate = held // keepalive answers are late from now on
		mu.Unlock()
		err := invoker(ctx, method, req, reply, cc, opts...)
		time.Sleep(testTTL + 500*time.Millisecond) // and so is the put's answer
		return err
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || method != "/etcdserverpb.Lease/LeaseKeepAlive" {
			return s, err
		}
		return gatedStream{s, getGate}, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: server.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	m, err := etcdlock.New(cli, newPrefix(t), 4, etcdlock.WithTTL(testTTL), etcdlock.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer close(held)
	l := locker(t, m, 1)
	if err := l.LockContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	select {
	case <-l.Lost():
		t.Errorf("LockContext returned nil with Lost already closed: it took the lock on a session whose deadline passed during its put")
	default:
	}
	if err := l.Check(context.Background()); errors.Is(err, etcdlock.ErrLost) {
		t.Errorf("Check right after LockContext returned nil: %v", err)
	}
}
