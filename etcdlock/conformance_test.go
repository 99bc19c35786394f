package etcdlock_test

import (
	"testing"
	"time"

	"github.com/lockdir/lockdir/lock"
	"github.com/lockdir/lockdir/lock/locktest"
)

// TestConformance runs the lock.Manager conformance suite, child processes
// included, against etcdlock on the embedded server. A killed holder's lock
// is free once its lease expires: within the TTL and the lessor's half-second
// expiry scan, so the kill bound is the TTL plus three seconds, a margin
// for a loaded machine (measured: 2.0 to 2.4 s with a TTL of 2 s).
func TestConformance(t *testing.T) {
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T, capacity uint32) (lock.Manager, string) {
			m := newManager(t, capacity)
			return m, addr(m)
		},
		Open:        openAddr,
		KillRelease: testTTL + 3*time.Second,
		// A Lock and an Unlock are an etcd write each, a millisecond or
		// more on a loaded machine, where the default 10 s is too short
		// for the 1,600 of the counter checks.
		CounterPatience: time.Minute,
	})
}
