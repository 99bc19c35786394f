package main

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestWaitSpaceDeletedExit (review 15): the lock space is deleted
// (etcdctl del --prefix) while 'lockdir lock -w' waits behind a holder.
// Since 54f911b the waiter's next attempt fails with lock.ErrCorrupt, and
// the CLI must say so as it does everywhere else for a corrupt or missing
// space: exit 3 (docs/cli.md: "its registry is corrupt ... the lock space
// is missing"), with advice about the space. lockdir lock instead wraps
// every error from the wait as exit 5 and hints "check that the cluster is
// up and reachable", which sends the operator after a network problem
// while etcd answered every request.
func TestWaitSpaceDeletedExit(t *testing.T) {
	bin, _, direct, _ := frozenSetup(t)
	startHolder(t, bin, direct)
	var stderr strings.Builder
	waiter := &exec.Cmd{Path: bin, Env: direct, Stderr: &stderr, Args: []string{"lockdir", "lock", "-w", "20", "1", "true"}}
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	defer waiter.Process.Kill()
	waitQueued(t, bin, direct)
	var ep string
	for _, kv := range direct {
		if v, ok := strings.CutPrefix(kv, "LOCKDIR_ETCD="); ok {
			ep = v
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, "/frozen-test/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	err = waiter.Wait()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	t.Logf("waiter: exit %d\n%s", code, stderr.String())
	if code != 3 || strings.Contains(stderr.String(), "up and reachable") {
		t.Errorf("lock -w in a lock space deleted under it: exit %d, hint about reachability; want exit 3 and advice about the deleted space", code)
	}
	// In etcd's words: not the lock directory's "lock registry is
	// corrupt" nor its advice to move the directory aside.
	if msg := stderr.String(); !strings.Contains(msg, "lock space was deleted") || strings.Contains(msg, "registry") || strings.Contains(msg, "move it aside") {
		t.Errorf("lock -w in a lock space deleted under it says, want etcd's words for a deleted space and no registry:\n%s", msg)
	}
}
