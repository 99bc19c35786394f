package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
	"github.com/lockdir/lockdir/internal/clitest"
)

// TestMain makes the test binary double as the etcd-enabled lockdir, so
// that the scripts in testdata run real lockdir processes, which reach the
// etcd that TestScripts embeds over the network.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"lockdir": main})
}

var scripts atomic.Int64

// TestScripts runs testdata/*.txtar against one etcd server embedded in
// the test process. Each script gets $LOCKDIR_ETCD, a lock space prefix of
// its own in $LOCKDIR_ETCD_PREFIX, and a $LOCKDIR_DIR, $WORK/ld, that no
// command on etcd may create.
func TestScripts(t *testing.T) {
	server, err := etcdtest.Start(filepath.Join(t.TempDir(), "etcd"), 1, etcdtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanup, not defer: the scripts run in parallel, after TestScripts returns.
	t.Cleanup(server.Close)
	var eps []string
	for _, e := range server.Endpoints() {
		eps = append(eps, strings.TrimPrefix(e, "http://"))
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("LOCKDIR_ETCD", strings.Join(eps, ","))
			e.Setenv("LOCKDIR_ETCD_PREFIX", fmt.Sprintf("/lockdir-cli-test/%d/", scripts.Add(1)))
			e.Setenv("LOCKDIR_DIR", filepath.Join(e.WorkDir, "ld"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": clitest.ExitCode,
			"revoke":   func(ts *testscript.TestScript, neg bool, args []string) { cmdRevoke(ts, neg, args, server) },
		},
	})
}

// cmdRevoke implements "revoke": it revokes the lease of every holder and
// waiter key under the script's prefix, through a client of its own, as
// an expiry would end them.
func cmdRevoke(ts *testscript.TestScript, neg bool, args []string, server *etcdtest.Cluster) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: revoke")
	}
	cli, err := server.Client()
	ts.Check(err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, ts.Getenv("LOCKDIR_ETCD_PREFIX")+"lock/", clientv3.WithPrefix())
	ts.Check(err)
	if len(resp.Kvs) == 0 {
		ts.Fatalf("revoke: no holder key")
	}
	for _, kv := range resp.Kvs {
		_, err := cli.Revoke(ctx, clientv3.LeaseID(kv.Lease))
		ts.Check(err)
		ts.Logf("revoked lease %x of %s", kv.Lease, kv.Key)
	}
}
