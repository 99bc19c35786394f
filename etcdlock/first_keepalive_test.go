package etcdlock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock"
)

// TestLostBeforeFirstKeepalive (review 10c): docs/etcd.md says a cut-off
// holder's "Lost closes at most a TTL after its last answered keepalive",
// and WithTTL that it loses its locks "at most d after its last successful
// keepalive". A session's lease is granted on the first Lock; if the
// holder is cut off before its first keepalive is answered (here: at once,
// on a client whose keepalive stream already runs, so that the new lease
// waits for the stream's next half-second tick), etcd's client waits
// firstKeepAliveTimeout, DialTimeout + 1 s (6 s with the usual 5 s dial
// timeout, lockdir's default), not the TTL, before it closes the
// keepalive channel. The server expires the lease a TTL (2 s) after the
// grant and another process takes the lock, while Lost stays open for
// seconds more. Lost must close within the TTL of the grant, plus a
// timer's margin, and Check then report ErrLost without asking etcd.
func TestLostBeforeFirstKeepalive(t *testing.T) {
	p, cli := newProxiedClient(t)
	// Start the client's keepalive stream with a lease of its own.
	ctx := context.Background()
	g, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAlive(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	m, err := etcdlock.New(cli, newPrefix(t), 4, etcdlock.WithTTL(testTTL), etcdlock.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l := locker(t, m, 1)
	granted := time.Now()
	l.Lock()
	p.Hold() // the holder is cut off
	lost := l.Lost()
	// When Lost closes, not when the test gets round to looking: the
	// test waits for the other process first.
	closedAt := make(chan time.Duration, 1)
	go func() {
		<-lost
		closedAt <- time.Since(granted)
	}()
	m2, err := openOwned(addr(m))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	l2 := locker(t, m2.Manager, 1)
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := l2.LockContext(lctx); err != nil {
		t.Fatalf("another process could not take the lock of the cut-off holder: %v", err)
	}
	taken := time.Since(granted)
	defer l2.Unlock()
	select {
	case <-lost:
	default:
		t.Logf("another process took lock 1 %v after the grant; the cut-off holder's Lost is still open", taken.Round(time.Millisecond))
	}
	// etcdlock ends the session on a timer of its own at the lease's
	// deadline; the margin is that timer's latency on a loaded machine.
	bound := testTTL + 500*time.Millisecond
	var d time.Duration
	select {
	case d = <-closedAt:
		t.Logf("Lost closed %v after the grant; another process took the lock %v after it", d.Round(time.Millisecond), taken.Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("Lost never closed")
	}
	if d > bound {
		t.Errorf("Lost closed %v after the grant of a holder cut off before its first keepalive, beyond the TTL (%v) and the timer's margin: %v", d.Round(time.Millisecond), testTTL, bound)
	}
	// The cut-off holder must not need etcd to learn that its hold is
	// gone: through the held proxy, Check would time out instead.
	if err := l.Check(ctx); !errors.Is(err, etcdlock.ErrLost) {
		t.Errorf("Check of the cut-off holder after Lost closed: %v, want an error matching ErrLost", err)
	}
}
