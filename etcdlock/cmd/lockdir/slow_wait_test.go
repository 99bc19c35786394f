package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWaitSlowClusterIsBusy runs lock -w on a lock that another lockdir
// holds, through a cluster that answers every request 300 ms later
// (another region, or a loaded member slow to fsync), with --dial-timeout
// 5s: etcd answers, the lock is held throughout, and the exit must be 1,
// busy, not 3, which is for a cluster that cannot be reached within
// --dial-timeout (found by review: the last try was given half a second).
func TestWaitSlowClusterIsBusy(t *testing.T) {
	bin, slow, direct, p := frozenSetup(t)
	p.Delay(150 * time.Millisecond)
	dir := t.TempDir()
	held := filepath.Join(dir, "held")
	holder := &exec.Cmd{Path: bin, Env: direct, Args: []string{"lockdir", "lock", "1", "--", "sh", "-c", "touch " + held + "; sleep 60"}}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	waitFile(t, held)
	var stderr strings.Builder
	waiter := &exec.Cmd{Path: bin, Env: slow, Stderr: &stderr, Args: []string{"lockdir", "--dial-timeout", "5s",
		"lock", "--verbose", "-w", "1", "1", "true"}}
	start := time.Now()
	err := waiter.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	t.Logf("waiter: exit %d after %v\n%s", code, time.Since(start).Round(time.Millisecond), stderr.String())
	if code != 1 {
		t.Fatalf("lock -w 1 on a held lock, etcd answering every request in 300 ms: exit %d, want 1 (busy)", code)
	}
}
