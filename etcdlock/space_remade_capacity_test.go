package etcdlock_test

import (
	"errors"
	"testing"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/lock"
)

// TestLockSpaceMadeAgainLarger (review 15): the lock space is deleted and
// made again at the same prefix with a larger capacity. docs/etcd.md: "A
// space deleted or recreated under a live Manager ...: its next change,
// and its next Lock, fail with lock.ErrCorrupt ..., before any other
// answer". The old Manager still answers from the capacity New read: an
// ID valid in the space now there is refused as lock.ErrInvalidID (the
// CLI's exit 2, "run 'lockdir status' to see the capacity", which shows
// the larger one), not lock.ErrCorrupt.
func TestLockSpaceMadeAgainLarger(t *testing.T) {
	cli := newClient(t)
	m := newManager(t, 4)
	deleteSpace(t, cli, m.Prefix())
	m2, err := etcdlock.New(cli, m.Prefix(), 8, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if _, err := m.AllocateAndRetrieve(6); !errors.Is(err, lock.ErrCorrupt) {
		t.Errorf("AllocateAndRetrieve(6) of the old Manager, in a space made again with 8 locks: %v, want lock.ErrCorrupt", err)
	}
	// Retrieve makes no request (TestRetrieveBadIDEtcdDown): it still
	// answers from the capacity New read.
	if _, err := m.Retrieve(6); !errors.Is(err, lock.ErrInvalidID) {
		t.Errorf("Retrieve(6) of the old Manager, in a space made again with 8 locks: %v, want lock.ErrInvalidID, from the capacity New read", err)
	}
}
