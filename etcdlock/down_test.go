package etcdlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
)

// TestEtcdDown stops the only etcd server under a manager that holds a
// lock: requests fail within the timeout, LockContext returns its context's
// error, Lost closes within about the TTL, and Unlock of the lost lock
// returns at once without panicking.
func TestEtcdDown(t *testing.T) {
	t.Parallel() // mostly waits: 6 s for the embedded server's graceful stop
	c, err := etcdtest.Start(t.TempDir(), 1, etcdtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cli, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	const timeout = 500 * time.Millisecond
	m, err := etcdlock.New(cli, "/down/", 4, etcdlock.WithTTL(testTTL), etcdlock.WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	held, other := locker(t, m, 0), locker(t, m, 1)
	held.Lock()
	closing := time.Now()
	c.Close()
	stopped := time.Now()
	t.Logf("stopping the server took %v", stopped.Sub(closing).Round(time.Millisecond))

	start := time.Now()
	if _, err := m.AllocateLock(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AllocateLock with etcd down: %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 10*timeout {
		t.Errorf("AllocateLock with etcd down took %v, timeout %v", took, timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := other.LockContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LockContext with etcd down: %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-held.Lost():
		t.Logf("FIGURE etcd down: Lost closed %v after the server stopped (TTL %v)", time.Since(stopped).Round(time.Millisecond), testTTL)
	case <-time.After(testTTL + 3*time.Second):
		t.Fatalf("Lost not closed %v after the server stopped", testTTL+3*time.Second)
	}
	start = time.Now()
	held.Unlock()
	if took := time.Since(start); took > timeout {
		t.Errorf("Unlock of a lost lock took %v with etcd down", took)
	}
}
