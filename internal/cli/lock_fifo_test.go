//go:build linux

package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestLockFileSwappedForFIFO is reliability round two's review finding:
// lockdir lock checked the lock file through the Manager, then opened it
// again by path without O_NONBLOCK. A FIFO renamed over locks/N in between
// (any member of a shared group may rename there) made that open block
// for ever, deaf to SIGTERM. Now lockdir keeps the descriptor the Manager
// checked. Here a goroutine swaps a FIFO and a regular file over locks/5
// while lockdir lock runs again and again; every run must end.
func TestLockFileSwappedForFIFO(t *testing.T) {
	bin := lockdirBinary(t)
	dir := filepath.Join(t.TempDir(), "ld")
	if out, err := exec.Command(bin, "--dir", dir, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	locks := filepath.Join(dir, "locks")
	stop := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		defer func() { swapped <- n }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			fifo, reg := filepath.Join(locks, "f"+strconv.Itoa(i)), filepath.Join(locks, "r"+strconv.Itoa(i))
			if syscall.Mkfifo(fifo, 0o600) != nil || os.Rename(fifo, filepath.Join(locks, "5")) != nil {
				return
			}
			if os.WriteFile(reg, nil, 0o600) != nil || os.Rename(reg, filepath.Join(locks, "5")) != nil {
				return
			}
			n++
		}
	}()
	runs := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); runs++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := exec.CommandContext(ctx, bin, "--dir", dir, "lock", "5", "true").Run()
		hung := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		if hung {
			close(stop)
			<-swapped
			t.Fatalf("run %d: lockdir lock was still running after 10 s (%v): stuck opening a FIFO", runs, err)
		}
	}
	close(stop)
	t.Logf("%d runs of lockdir lock against %d swaps of a FIFO over the lock file", runs, <-swapped)
}
