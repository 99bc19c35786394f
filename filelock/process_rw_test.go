//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/internal/childproc"
)

// childRW opens $DIR and obeys the commands on its standard input, one a
// line, for lock $ID, answering each on standard output once done:
//
//	ex, sh     Lock, RLock                     -> "locked"
//	un, run    Unlock, RUnlock                 -> "unlocked"
//	rawex      flock(LOCK_EX) on a descriptor of its own for LockPath
//	           (a process that is not lockdir) -> "locked"
//	rawun      flock(LOCK_UN) on it            -> the wall-clock time in
//	           nanoseconds read just before the call
//
// It prints "ready" first and exits at the end of its input.
func childRW() error {
	m, err := filelock.Open(os.Getenv("DIR"))
	if err != nil {
		return err
	}
	defer m.Close()
	id, err := envUint32("ID")
	if err != nil {
		return err
	}
	lk, err := m.RetrieveLock(id)
	if err != nil {
		return err
	}
	l := lk.(*filelock.Locker)
	raw := -1
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch cmd := in.Text(); cmd {
		case "ex":
			l.Lock()
			fmt.Println("locked")
		case "sh":
			l.RLock()
			fmt.Println("locked")
		case "un":
			l.Unlock()
			fmt.Println("unlocked")
		case "run":
			l.RUnlock()
			fmt.Println("unlocked")
		case "rawex":
			if raw < 0 {
				if raw, err = syscall.Open(m.LockPath(id), syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err != nil {
					return err
				}
			}
			if err := syscall.Flock(raw, syscall.LOCK_EX); err != nil {
				return err
			}
			fmt.Println("locked")
		case "rawun":
			t0 := time.Now().UnixNano()
			if err := syscall.Flock(raw, syscall.LOCK_UN); err != nil {
				return err
			}
			fmt.Println(t0)
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	return in.Err()
}

// startRW starts a child in the role rw on lock id of dir and waits for it
// to be ready.
func startRW(t *testing.T, dir string, id uint32) *childproc.Child {
	t.Helper()
	c := startChild(t, "rw", "DIR="+dir, "ID="+strconv.FormatUint(uint64(id), 10))
	c.Expect("ready", patience)
	return c
}

// TestSharedAcrossProcesses checks that RLock holders in two processes
// coexist, with this process's reader too, and exclude a Lock in a third
// until both let go; and that a writer in another process excludes them.
func TestSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	m := create(t, 10)
	dir := m.Dir()
	l := mustRetrieve(t, m, 5)
	r1, r2, w := startRW(t, dir, 5), startRW(t, dir, 5), startRW(t, dir, 5)
	r1.Send("sh")
	r1.Expect("locked", patience)
	r2.Send("sh")
	r2.Expect("locked", patience) // stops the test if r2 is never let in
	if !l.TryRLock() {
		t.Error("TryRLock failed while only readers in other processes hold the lock")
	} else {
		l.RUnlock()
	}
	if l.TryLock() {
		l.Unlock()
		t.Error("TryLock succeeded while readers in other processes hold the lock")
	}
	w.Send("ex")
	if w.Quiet(blockWindow, "readers in two other processes hold the lock") {
		r1.Send("run")
		r1.Expect("unlocked", patience)
		w.Quiet(blockWindow, "a reader in another process still holds the lock")
		r2.Send("run")
		r2.Expect("unlocked", patience)
	}
	w.Expect("locked", patience)
	r1.Send("sh")
	if r1.Quiet(blockWindow, "a writer in another process holds the lock") {
		if l.TryRLock() {
			l.RUnlock()
			t.Error("TryRLock succeeded while a writer in another process holds the lock")
		}
		w.Send("un")
		w.Expect("unlocked", patience)
	}
	r1.Expect("locked", patience)
	r1.Send("run")
	r1.Expect("unlocked", patience)
	for _, c := range []*childproc.Child{r1, r2, w} {
		c.Wait(childExit)
	}
	if heldElsewhere(t, dir, 5) {
		t.Error("lock held after every child exited")
	}
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

// TestSharedFlockInterop checks the shared lock against util-linux
// flock(1) on LockPath: RLock coexists with flock -s and excludes
// flock -x, both ways.
func TestSharedFlockInterop(t *testing.T) {
	t.Parallel()
	flockCmd, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("no flock(1)")
	}
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
	if !l.TryRLock() {
		t.Error("TryRLock failed while flock -s holds the lock")
	} else {
		l.RUnlock()
	}
	if l.TryLock() {
		l.Unlock()
		t.Error("TryLock succeeded while flock -s holds the lock")
	}
	release()

	release = flockHolder(t, flockCmd, path, "-x")
	if l.TryRLock() {
		l.RUnlock()
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
