package etcdlock_test

import (
	"errors"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/lock"
)

// TestRetrieveBadIDEtcdDown: Retrieve's doc comment says it works
// "without a request to etcd", and the contract's RetrieveLock is a lookup
// (Podman calls it for every container at start). Since 901a271 an ID at
// or beyond the capacity costs a read of P/meta first (errID), so with etcd
// out of reach Retrieve and AllocateAndRetrieve of a bad ID block for the
// whole request timeout (WithTimeout, 5 s by default) before they return
// lock.ErrInvalidID; nothing documents that a refusal of a bad ID can wait
// on etcd. A read that fails should not delay a refusal that stands
// anyway, or the wait should at least be documented.
func TestRetrieveBadIDEtcdDown(t *testing.T) {
	p, cli := newProxiedClient(t)
	const timeout = 3 * time.Second
	m, err := etcdlock.New(cli, newPrefix(t), 4, etcdlock.WithTTL(testTTL), etcdlock.WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p.Hold() // etcd stops answering
	start := time.Now()
	_, err = m.Retrieve(4)
	took := time.Since(start)
	if !errors.Is(err, lock.ErrInvalidID) {
		t.Errorf("Retrieve(4) with capacity 4: %v, want lock.ErrInvalidID", err)
	}
	if took > time.Second {
		t.Errorf("Retrieve(4) of a bad ID took %v with etcd out of reach (timeout %v): documented as a lookup without a request to etcd", took.Round(time.Millisecond), timeout)
	}
}
