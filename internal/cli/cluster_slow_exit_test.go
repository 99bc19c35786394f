//go:build linux

package cli

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// slowSpace is a Space on a cluster that answers every request, each after
// rtt (a cluster in another region, or one whose disk is slow to fsync),
// and whose lock 1 another process holds throughout. As etcdlock does, a
// try on the held lock costs two round trips (the Txn that puts the key
// and reads the owner, then the withdraw's Delete), and a wait ends with
// its context.
type slowSpace struct {
	Space
	rtt time.Duration
}

func (slowSpace) Where() string { return "etcd lock space /lockdir/ at etcd1:2379" }
func (s slowSpace) Lock(ctx context.Context, id uint32, wait bool) (Held, error) {
	if wait {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	time.Sleep(2 * s.rtt) // Txn, then withdraw: etcd answered both
	return nil, nil
}

// TestLockWaitSlowClusterIsBusy runs lock -w on a held lock, with a
// cluster that answers every request in 300 ms: it must end busy (-w's
// exit 1), since etcd answered; exit 3 is for a cluster that "cannot be
// reached within --dial-timeout" (found by review: the last try was given
// half a second, and a slow cluster exited 3).
func TestLockWaitSlowClusterIsBusy(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	o := &lockOptions{wait: 0.2, waitSet: true, conflict: 1}
	_, err := takeClusterLock(slowSpace{rtt: 300 * time.Millisecond}, o, 1, sigs)
	var st exitStatus
	if !errors.As(err, &st) || int(st) != o.conflict {
		t.Errorf("lock -w 0.2 on a held lock, etcd answering in 300 ms: %v, want exit status %d (busy)", err, o.conflict)
	}
}
