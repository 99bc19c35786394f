package etcdlock_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKillHolder kills a child process holding a lock with SIGKILL: the lock
// is free once the child's lease expires, within the TTL and etcd's
// half-second expiry scan, and the next holder's token is above the dead
// one's. The time from the kill to the next acquisition is logged as a
// FIGURE.
func TestKillHolder(t *testing.T) {
	m := newManager(t, 4)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=hold", envAddr+"="+addr(m), envID+"=2")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	childTok, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(line), "locked "), 10, 64)
	if err != nil {
		t.Fatalf("child printed %q", line)
	}
	l := locker(t, m, 2)
	if l.TryLock() {
		t.Fatal("TryLock succeeded while a child holds the lock")
	}
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTTL+5*time.Second)
	defer cancel()
	if err := l.LockContext(ctx); err != nil {
		t.Fatalf("Lock after killing the holder: %v", err)
	}
	took := time.Since(killed)
	t.Logf("FIGURE kill -9 to next acquisition: %v (TTL %v)", took.Round(time.Millisecond), testTTL)
	if l.Token() <= childTok {
		t.Errorf("token after the kill %d, not above the dead holder's %d", l.Token(), childTok)
	}
	if took < testTTL/2 {
		t.Errorf("lock acquired %v after the kill, before the lease could expire: the holder's key was not bound to its lease", took)
	}
	l.Unlock()
	fmt.Fprint(stdin, "\n")
}
