package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestWaitUnreachableIsNotBusy cuts a waiter's connections to etcd (as a
// firewall or a dead member would) while it queues behind a holder with
// -w, then lets the holder finish: in etcd the waiter is now the holder,
// but lockdir cannot know it. When -w runs out it must say that etcd did
// not answer (exit 3), not -w's busy code 1, "held by another process",
// which a script reads as someone else having the lock (found by review).
func TestWaitUnreachableIsNotBusy(t *testing.T) {
	bin, env, direct, p := frozenSetup(t)
	holder, release := startHolder(t, bin, direct)
	var stderr strings.Builder
	waiter := &exec.Cmd{Path: bin, Env: env, Stderr: &stderr, Args: []string{"lockdir", "--dial-timeout", "1s", "--ttl", "10s",
		"lock", "--verbose", "-w", "4", "1", "true"}}
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, bin, direct)
	p.Cut()
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := holder.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	out, _ := (&exec.Cmd{Path: bin, Env: direct, Args: []string{"lockdir", "status", "1"}}).CombinedOutput()
	t.Logf("lock 1 once the holder is done, from a reachable client (waiter is PID %d):\n%s", waiter.Process.Pid, out)
	start := time.Now()
	err := waiter.Wait()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	t.Logf("waiter: exit %d, %v after the cut\n%s", code, time.Since(start).Round(time.Millisecond), stderr.String())
	if code != 3 || strings.Contains(stderr.String(), "held") {
		t.Fatalf("lock -w reported a cluster it could not reach as a busy lock (exit %d), while no other process held it", code)
	}
}
