package etcdlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
)

// TestLockAfterClientClosed (review 10c): New does not take ownership of
// the client, so a program may close the client before (or while) a
// goroutine locks. Every request then fails at once with "the client
// connection is closing", and no retry can change that, the case in which
// Lock's doc says it panics (as for a closed Manager or a refusal by
// etcd). Instead lock() retries it with a backoff for ever: Lock never
// returns, a goroutine and its timer leak, and LockContext returns only
// when its context ends, with context.DeadlineExceeded, as if etcd were
// merely slow.
func TestLockAfterClientClosed(t *testing.T) {
	cli, err := etcdtest.NewClient(server.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	m, err := etcdlock.New(cli, newPrefix(t), 4, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l := locker(t, m, 1)
	cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err = l.LockContext(ctx)
	t.Logf("LockContext after the client was closed: %v after %v", err, time.Since(start).Round(time.Millisecond))
	if err == nil {
		t.Fatal("LockContext with a closed client took the lock")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LockContext with a closed client retried until its context ended (%v), so Lock would never return", time.Since(start).Round(time.Millisecond))
	}
}
