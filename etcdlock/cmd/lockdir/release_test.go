package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
)

// TestReleaseEndsOnSignal freezes etcd, as seen by lockdir, just as lock's
// command exits: Unlock and the session's revoke then each wait for up to
// --dial-timeout (here 20 s). A SIGTERM (a service manager's) or a Ctrl-C
// must still end lockdir at once (found by review: it ended 2 × the
// timeout later). Its key goes with its lease, within the TTL.
func TestReleaseEndsOnSignal(t *testing.T) {
	bin, env, _, p := frozenSetup(t)
	dir := t.TempDir()
	started, finish := filepath.Join(dir, "started"), filepath.Join(dir, "finish")
	cmd, exited := startLockdir(t, bin, env, "--dial-timeout", "20s", "lock", "1", "--",
		"sh", "-c", "touch "+started+"; while [ ! -e "+finish+" ]; do sleep 0.02; done")
	waitFile(t, started)
	p.Hold()
	if err := os.WriteFile(finish, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the command exits; lockdir waits on etcd
	endsOnSignal(t, cmd, exited)
}

// TestWaitEndsOnSignal freezes etcd, as seen by a lockdir waiting for a
// held lock, then sends it SIGTERM: withdrawing its place in the queue
// waits for up to --dial-timeout (20 s), and lockdir must give it about a
// second, not that (found by review).
func TestWaitEndsOnSignal(t *testing.T) {
	bin, env, direct, p := frozenSetup(t)
	dir := t.TempDir()
	held := filepath.Join(dir, "held")
	holder := &exec.Cmd{Path: bin, Env: direct, Args: []string{"lockdir", "lock", "1", "--", "sh", "-c", "touch " + held + "; sleep 30"}}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	waitFile(t, held)
	cmd, exited := startLockdir(t, bin, env, "--dial-timeout", "20s", "lock", "1", "true")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, _ := (&exec.Cmd{Path: bin, Env: direct, Args: []string{"lockdir", "status", "1"}}).Output()
		if strings.Contains(string(out), "waiting") || strings.Count(string(out), " yes ") > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second lockdir did not queue: %s", out)
		}
	}
	p.Hold()
	endsOnSignal(t, cmd, exited)
}

// frozenSetup starts etcd, a proxy in front of it (which the test may hold
// or cut), and a lock space; env names the space through the proxy, direct
// without it.
func frozenSetup(t *testing.T) (bin string, env, direct []string, p *etcdtest.TCPProxy) {
	t.Helper()
	server, err := etcdtest.Start(filepath.Join(t.TempDir(), "etcd"), 1, etcdtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Close) // after the proxy's clean-up, which lets its connections go
	target := strings.TrimPrefix(server.Endpoints()[0], "http://")
	p = etcdtest.StartTCPProxy(t, target)
	bin = filepath.Join(t.TempDir(), "lockdir")
	if err := os.Symlink(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	env = append(os.Environ(), "LOCKDIR_ETCD="+p.Addr(), "LOCKDIR_ETCD_PREFIX=/frozen-test/")
	if out, err := (&exec.Cmd{Path: bin, Args: []string{"lockdir", "init"}, Env: env}).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	direct = append(slices.Clone(env), "LOCKDIR_ETCD="+target)
	return bin, env, direct, p
}

// startLockdir starts bin as lockdir with args, and returns it and the
// channel its Wait's result comes on.
func startLockdir(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := &exec.Cmd{Path: bin, Env: env, Args: append([]string{"lockdir"}, args...)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return cmd, exited
}

// endsOnSignal sends SIGTERM to cmd and fails unless it exits within 10 s,
// half the --dial-timeout that a wait on the frozen etcd would take.
func endsOnSignal(t *testing.T, cmd *exec.Cmd, exited <-chan error) {
	t.Helper()
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		t.Logf("lockdir ended %v after SIGTERM: %v", time.Since(sent).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("lockdir still waiting on a frozen etcd 10 s after SIGTERM")
	}
}

func waitFile(t *testing.T, name string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(name); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", name)
		}
	}
}

// startHolder starts a lockdir that holds lock 1 until the file release
// exists, and waits until it holds it; t's end releases and reaps it.
func startHolder(t *testing.T, bin string, env []string) (holder *exec.Cmd, release string) {
	t.Helper()
	dir := t.TempDir()
	held, release := filepath.Join(dir, "held"), filepath.Join(dir, "release")
	holder = &exec.Cmd{Path: bin, Env: env, Args: []string{"lockdir", "lock", "1", "--", "sh", "-c",
		"touch " + held + "; while [ ! -e " + release + " ]; do sleep 0.02; done"}}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644); holder.Process.Kill(); holder.Wait() })
	waitFile(t, held)
	return holder, release
}

// waitQueued waits until lockdir status, run with env, shows a waiter for
// lock 1.
func waitQueued(t *testing.T, bin string, env []string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, _ := (&exec.Cmd{Path: bin, Env: env, Args: []string{"lockdir", "status", "1"}}).Output()
		if strings.Contains(string(out), "waiting") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waiter did not queue: %s", out)
		}
	}
}

// TestTermDuringCommandEndsRelease stops a service as a service manager
// does, with one SIGTERM while the command runs (systemd's default
// KillMode sends it to lockdir and the command at once), and etcd out of
// reach: lockdir passes it on, the command exits, and lockdir must end
// within about a second, not wait --dial-timeout twice (20 s each here)
// to release the lock (found by review: forwardSignals took the SIGTERM,
// and the release did not count it).
func TestTermDuringCommandEndsRelease(t *testing.T) {
	bin, env, _, p := frozenSetup(t)
	dir := t.TempDir()
	started, ended := filepath.Join(dir, "started"), filepath.Join(dir, "ended")
	cmd, exited := startLockdir(t, bin, env, "--dial-timeout", "20s", "lock", "1", "--",
		"sh", "-c", "trap 'touch "+ended+"; exit 0' TERM; touch "+started+"; while :; do sleep 0.02; done")
	waitFile(t, started)
	p.Hold() // etcd stops answering, as in a partition or a shutdown
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		t.Logf("lockdir ended %v after SIGTERM: %v", time.Since(sent).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		if _, err := os.Stat(ended); err != nil {
			t.Fatalf("the command did not get the SIGTERM: %v", err)
		}
		t.Fatalf("the command ended on the SIGTERM, but lockdir is still releasing on a frozen etcd 10 s after the SIGTERM that ended its command")
	}
}
