package etcdlock_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// lateDelete is a gRPC interceptor that makes the first delete of a
// holder key time out for the client while etcd applies it later, when
// told, as a request on a slow or lagging member can be: a client's
// timeout does not withdraw a proposal.
type lateDelete struct {
	once    sync.Once
	apply   chan struct{}
	applied chan error
}

func (d *lateDelete) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if isHolderDelete(req) {
		late := false
		d.once.Do(func() { late = true })
		if late {
			go func() {
				<-d.apply
				d.applied <- invoker(context.Background(), method, req, newReply(reply), cc, opts...)
			}()
			return context.DeadlineExceeded
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// isHolderDelete reports whether req deletes a holder key: a plain delete,
// or a transaction whose success branch deletes one (a delete guarded by
// the key's create revision).
func isHolderDelete(req any) bool {
	switch r := req.(type) {
	case *pb.DeleteRangeRequest:
		return strings.Contains(string(r.Key), "/lock/")
	case *pb.TxnRequest:
		for _, op := range r.Success {
			if del := op.GetRequestDeleteRange(); del != nil && strings.Contains(string(del.Key), "/lock/") {
				return true
			}
		}
	}
	return false
}

// newReply returns a new reply of reply's type, for a request applied
// after the caller stopped waiting.
func newReply(reply any) any {
	if _, ok := reply.(*pb.TxnResponse); ok {
		return new(pb.TxnResponse)
	}
	return new(pb.DeleteRangeResponse)
}

// TestLateDeleteAfterRelock (review 10c): Unlock's delete times out but
// etcd applies it later. release retries the delete, which succeeds, and
// gives up the in-process turn; the next Lock of the ID puts the holder
// key again, under the same name (the lease's), and holds the lock. Then
// the first delete is applied: an unconditional delete of that name, it
// deletes the new hold's key. The hold is gone in etcd while its session
// lives, so Lost never closes, and another process takes the lock: two
// holders at once, and the first is never told. (withdraw's deletes are
// as unconditional.)
func TestLateDeleteAfterRelock(t *testing.T) {
	d := &lateDelete{apply: make(chan struct{}), applied: make(chan error, 1)}
	m := interceptedManager(t, d.intercept)
	l := locker(t, m, 1)
	l.Lock()
	l.Unlock() // the delete "times out"; the background retry deletes the key
	l.Lock()   // waits for the retry, then holds the lock with a new key of the same name
	defer l.Unlock()
	tok := l.Token()
	close(d.apply)
	if err := <-d.applied; err != nil {
		t.Fatalf("the late delete: %v", err)
	}
	if l2, err := lockFromOther(t, m, 1, time.Second); err == nil {
		lost := "open"
		select {
		case <-l.Lost():
			lost = "closed"
		default:
		}
		t.Errorf("another process took lock 1 (token %d) while this one holds it (token %d); the holder's Lost is %s", l2.Token(), tok, lost)
		l2.Unlock()
	}
}
