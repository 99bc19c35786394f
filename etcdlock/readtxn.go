package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// readRetryWait is the pause between two tries of a read-only transaction,
// clientv3's own between two tries of a Range.
const readRetryWait = 25 * time.Millisecond

// readTxn runs ops, which only read, in one transaction, and retries it
// while etcd answers Unavailable ("leader changed", "no leader"), until ctx
// ends. clientv3 retries a Range so by itself, but treats every Txn as a
// change and does not retry one that was sent (review 15: Allocate, whose
// read is a Txn since it reads the meta key too, failed on every leader
// change that caught it). A read applies nothing, so a retry is safe
// whatever became of the try before.
func (m *Manager) readTxn(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	for {
		resp, err := m.cli.Txn(ctx).Then(ops...).Commit()
		if err == nil || !unavailable(err) {
			return resp, err
		}
		t := time.NewTimer(readRetryWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w; last answer: %w", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// unavailable reports whether err is an answer that clientv3 retries for
// a Range (isSafeRetryImmutableRPC): codes.Unavailable, from etcd or from
// gRPC.
func unavailable(err error) bool {
	var e rpctypes.EtcdError
	if errors.As(err, &e) {
		return e.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}
