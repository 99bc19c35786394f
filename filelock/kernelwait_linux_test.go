package filelock_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/lockdir/lockdir/filelock"
)

// procLockWaiters counts the flock waiters ("->" entries) of process pid
// on inode ino in /proc/locks.
//
// The kernel gives /proc/locks a page at a time, and a table that changes
// between two pages (other tests lock files meanwhile) can repeat or skip
// an entry: it reads the table until two reads agree, as Holders does (a
// single read once counted a waiter twice under make test's load).
func procLockWaiters(t *testing.T, pid int, ino uint64) int {
	t.Helper()
	prev := -1
	for range 10 {
		n := procLockWaitersOnce(t, pid, ino)
		if n == prev {
			return n
		}
		prev = n
	}
	return prev
}

// procLockWaitersOnce is procLockWaiters on one read of /proc/locks.
func procLockWaitersOnce(t *testing.T, pid int, ino uint64) int {
	t.Helper()
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Skipf("no /proc/locks: %v", err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// "1: -> FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"
		f := bytes.Fields(sc.Bytes())
		if len(f) < 7 || string(f[1]) != "->" || string(f[2]) != "FLOCK" {
			continue
		}
		i := bytes.LastIndexByte(f[6], ':')
		gotIno, err := strconv.ParseUint(string(f[6][i+1:]), 10, 64)
		if err != nil || gotIno != ino {
			continue
		}
		if gotPid, _ := strconv.Atoi(string(f[5])); gotPid == pid {
			n++
		}
	}
	return n
}

// TestKernelWaiterInProcLocks checks that LockContext and RLockContext with
// a cancellable context wait in flock(2): while flock(1) in another process
// holds the lock, this process shows in /proc/locks as a waiter for it,
// exactly once however many callers wait, and a cancelled caller's waiter
// is gone once the holder lets go.
func TestKernelWaiterInProcLocks(t *testing.T) {
	t.Parallel()
	flockCmd := lookFlock(t)
	for _, md := range modes {
		name := md.contextName
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := create(t, 10)
			path, err := m.LockFile(6)
			if err != nil {
				t.Fatal(err)
			}
			ino, pid := inode(t, path), os.Getpid()
			release := flockHolder(t, flockCmd, path, "-x")
			ctx, cancel := context.WithCancel(t.Context())
			lockCtx := func(l *filelock.Locker) error { return md.lockContext(l, ctx) }
			first := start(name, func() error { return lockCtx(mustRetrieve(t, m, 6)) })
			if !eventually(func() bool { return procLockWaiters(t, pid, ino) > 0 }) {
				t.Fatalf("%s on a lock flock(1) holds never showed in /proc/locks as a waiter", name)
			}
			// More callers, through the same Locker kind and others:
			// they queue in the process, not in the kernel.
			var wg sync.WaitGroup
			errs := make(chan error, 10)
			for range 10 {
				l := mustRetrieve(t, m, 6)
				wg.Go(func() { errs <- lockCtx(l) })
			}
			first.blocked(t, "flock(1) holds the lock")
			if n := procLockWaiters(t, pid, ino); n != 1 {
				t.Errorf("%d waiters of this process in /proc/locks with 11 callers waiting, want 1", n)
			}
			cancel()
			first.wantCanceled(t, "cancelled")
			wg.Wait()
			close(errs)
			for err := range errs {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s cancelled: %v, want context.Canceled", name, err)
				}
			}
			release()
			if !eventually(func() bool { return procLockWaiters(t, pid, ino) == 0 }) {
				t.Error("this process still waits for the lock in /proc/locks after flock(1) let go")
			}
			if !freeElsewhere(t, m.Dir(), 6) {
				t.Error("lock still held after flock(1) let go and every caller was cancelled")
			}
		})
	}
}
