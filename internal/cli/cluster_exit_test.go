//go:build linux

package cli

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"testing"
)

// unreachableSpace is a Space whose cluster stopped answering after it
// was opened: Lock fails as etcdlock fails a request etcd did not answer.
type unreachableSpace struct{ Space }

func (unreachableSpace) Where() string { return "etcd lock space /lockdir/ at etcd1:2379" }
func (unreachableSpace) Lock(ctx context.Context, id uint32, wait bool) (Held, error) {
	return nil, &fs.PathError{Op: "lock", Path: "/lockdir/lock/1", Err: fmt.Errorf("etcd at etcd1:2379 did not answer within 5s: %w", context.DeadlineExceeded)}
}

// TestLockUnreachableExitCode checks docs/cli.md's exit 3 for a cluster
// that cannot be reached, for one that stops answering between the
// opening of the lock space and the lock, with -n and without (found by
// review: exit 5).
func TestLockUnreachableExitCode(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	for _, o := range []*lockOptions{{nonblock: true, conflict: 1}, {conflict: 1}} {
		_, err := takeClusterLock(unreachableSpace{}, o, 1, sigs)
		if code, _ := classify(err); code != exitDir {
			t.Errorf("lock (-n %v) on a cluster that stopped answering: exit %d (%v), want %d", o.nonblock, code, err, exitDir)
		}
	}
}
