package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
)

// TestForeignLockKeyAdvice puts a key that is not a holder key under the
// lock space's lock/ directory, as a stray etcdctl put would, and runs
// status: it fails (exit 3), with etcd's advice, never the lock directory's
// "move it aside, run 'lockdir init'", since on etcd there is no directory
// and init would join the same space (found by review).
func TestForeignLockKeyAdvice(t *testing.T) {
	server, err := etcdtest.Start(filepath.Join(t.TempDir(), "etcd"), 1, etcdtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	var eps []string
	for _, e := range server.Endpoints() {
		eps = append(eps, strings.TrimPrefix(e, "http://"))
	}
	bin := filepath.Join(t.TempDir(), "lockdir")
	if err := os.Symlink(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "LOCKDIR_ETCD="+strings.Join(eps, ","), "LOCKDIR_ETCD_PREFIX=/foreign-key/")
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := run("init", "--num-locks", "8"); code != 0 {
		t.Fatalf("init: %d\n%s", code, out)
	}
	cli, err := server.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/foreign-key/lock/stray", "x"); err != nil {
		t.Fatal(err)
	}
	out, code := run("status")
	if code != 3 || strings.Contains(out, "move it aside") || strings.Contains(out, "this directory") || !strings.Contains(out, "etcdctl") {
		t.Errorf("status on a lock space with a foreign key: exit %d, want 3 with etcd's advice:\n%s", code, out)
	}
}
