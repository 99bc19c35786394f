//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

// Interplay with util-linux flock(1) on LockPath: a lockdir lock and a
// shell script's flock(1) on the same file exclude each other, and a shared
// lock coexists with flock -s.

// lookFlock returns the path of flock(1), or skips t if there is none.
func lookFlock(t *testing.T) string {
	t.Helper()
	flockCmd, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("no flock(1)")
	}
	return flockCmd
}

// flockHolder runs util-linux flock(1) with args on path, holding the lock
// until the returned function is called, which waits for it to exit.
func flockHolder(t *testing.T, flockCmd string, path string, args ...string) func() {
	t.Helper()
	args = append(args, path, "sh", "-c", "echo held; cat >/dev/null")
	cmd := exec.Command(flockCmd, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "held\n" {
		t.Fatalf("flock %v: printed %q, %v", args, line, err)
	}
	return func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("flock %v: %v", args, err)
		}
	}
}

// flockN runs flock -n with mode (-s or -x) on path and returns its exit
// status.
func flockN(t *testing.T, flockCmd, mode, path string) int {
	t.Helper()
	err := exec.Command(flockCmd, "-n", mode, path, "true").Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("flock -n %s: %v", mode, err)
		return -1
	}
}

// TestFlockInterop checks that flock(1) on LockPath and Lock exclude each
// other.
func TestFlockInterop(t *testing.T) {
	t.Parallel()
	flockCmd := lookFlock(t)
	m := create(t, 10)
	path := m.LockPath(2)
	l := mustRetrieve(t, m, 2)
	l.Lock()
	if got := flockN(t, flockCmd, "-x", path); got != 1 {
		t.Errorf("flock -n -x while Lock holds the lock: exit status %d, want 1", got)
	}
	l.Unlock()
	if got := flockN(t, flockCmd, "-x", path); got != 0 {
		t.Errorf("flock -n -x after Unlock: exit status %d, want 0", got)
	}
	// flock(1) holds it; TryLock fails until it lets go.
	release := flockHolder(t, flockCmd, path, "-n")
	if canLock(l) {
		t.Error("TryLock succeeded while flock(1) holds the lock")
	}
	release()
	if !canLock(l) {
		t.Error("TryLock failed after flock(1) exited")
	}
}

// TestSharedFlockInterop checks the shared lock against util-linux
// flock(1) on LockPath: RLock coexists with flock -s and excludes
// flock -x, both ways.
func TestSharedFlockInterop(t *testing.T) {
	t.Parallel()
	flockCmd := lookFlock(t)
	m := create(t, 10)
	path, err := m.LockFile(2)
	if err != nil {
		t.Fatal(err)
	}
	l := mustRetrieve(t, m, 2)

	l.RLock()
	if got := flockN(t, flockCmd, "-s", path); got != 0 {
		t.Errorf("flock -n -s while RLock holds the lock: exit status %d, want 0", got)
	}
	if got := flockN(t, flockCmd, "-x", path); got != 1 {
		t.Errorf("flock -n -x while RLock holds the lock: exit status %d, want 1", got)
	}
	// A blocking flock -x waits until the reader lets go.
	x := exec.Command(flockCmd, "-x", path, "true")
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	xdone := make(chan error, 1)
	go func() { xdone <- x.Wait() }()
	select {
	case err := <-xdone:
		t.Errorf("flock -x returned (%v) while RLock holds the lock", err)
	case <-time.After(blockWindow):
	}
	l.RUnlock()
	select {
	case err := <-xdone:
		if err != nil {
			t.Errorf("flock -x after RUnlock: %v", err)
		}
	case <-time.After(patience):
		t.Fatal("flock -x still waiting after RUnlock")
	}

	l.Lock()
	if got := flockN(t, flockCmd, "-s", path); got != 1 {
		t.Errorf("flock -n -s while Lock holds the lock: exit status %d, want 1", got)
	}
	l.Unlock()

	release := flockHolder(t, flockCmd, path, "-s")
	if !canRLock(l) {
		t.Error("TryRLock failed while flock -s holds the lock")
	}
	if canLock(l) {
		t.Error("TryLock succeeded while flock -s holds the lock")
	}
	release()

	release = flockHolder(t, flockCmd, path, "-x")
	if canRLock(l) {
		t.Error("TryRLock succeeded while flock -x holds the lock")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	err = l.RLockContext(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RLockContext while flock -x holds the lock: %v, want DeadlineExceeded", err)
	}
	r := startRLock(l)
	if r.blocked(t, "flock -x holds the lock") {
		release()
	}
	r.mustReturn(t, "flock -x let go")
	if got := flockN(t, flockCmd, "-s", path); got != 0 {
		t.Errorf("flock -n -s after RLock took the lock from flock -x: exit status %d, want 0", got)
	}
	l.RUnlock()
}
