//go:build linux

package filelock_test

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

// Holders, Waiters and LocksHeld: who holds and who waits for which lock,
// as /proc/locks tells.

// TestHolders checks LocksHeld and Holders against the locks a child holds,
// allocated and not, after a shrink, and with a lock this process holds.
func TestHolders(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/locks"); err != nil {
		t.Skip("no /proc/locks")
	}
	m := create(t, 10)
	for _, id := range []uint32{1, 3, 8} {
		if _, err := m.AllocateAndRetrieveLock(id); err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := m.LocksHeld(); err != nil || len(ids) != 0 {
		t.Fatalf("LocksHeld with nothing held = %v, %v", ids, err)
	}
	// The child holds allocated 3 and 8, and unallocated 5.
	c := holdInChild(t, m.Dir(), 3, 5, 8)
	pid := c.Pid()
	ids, err := m.LocksHeld()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []uint32{3, 8}) {
		t.Errorf("LocksHeld = %v, want [3 8]", ids)
	}
	hs, err := m.Holders()
	if err != nil {
		t.Fatal(err)
	}
	want := []filelock.Holder{
		{ID: 3, PID: pid, Exclusive: true, Allocated: true},
		{ID: 5, PID: pid, Exclusive: true, Allocated: false},
		{ID: 8, PID: pid, Exclusive: true, Allocated: true},
	}
	if !slices.Equal(hs, want) {
		t.Errorf("Holders = %+v, want %+v", hs, want)
	}
	// After a shrink, held lock 8 is beyond the capacity and not listed.
	if err := mustRetrieve(t, m, 8).Free(); err != nil {
		t.Fatal(err)
	}
	if err := m.Resize(6); err != nil {
		t.Fatal(err)
	}
	if hs, err = m.Holders(); err != nil || !slices.Equal(hs, want[:2]) {
		t.Errorf("Holders after shrinking to 6 = %+v, %v; want %+v", hs, err, want[:2])
	}
	// And a lock held by this process counts too.
	l := mustRetrieve(t, m, 1)
	l.Lock()
	if ids, err = m.LocksHeld(); err != nil || !slices.Equal(ids, []uint32{1, 3}) {
		t.Errorf("LocksHeld = %v, %v; want [1 3]", ids, err)
	}
	l.Unlock()
	c.Wait(childExit)
	if ids, err = m.LocksHeld(); err != nil || len(ids) != 0 {
		t.Errorf("LocksHeld after the child exited = %v, %v; want none", ids, err)
	}
}

// TestWaiters blocks flock(1) on a lock a child holds: Waiters must list
// it, and Holders must not.
func TestWaiters(t *testing.T) {
	lookFlock(t)
	m := create(t, 16)
	holder := holdInChild(t, m.Dir(), 5)
	path, err := m.LockFile(5)
	if err != nil {
		t.Fatal(err)
	}
	w := exec.Command("flock", "-s", path, "true")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Wait() }()
	t.Cleanup(func() { w.Process.Kill() })
	want := []filelock.Holder{{ID: 5, PID: w.Process.Pid, Exclusive: false}}
	var ws []filelock.Holder
	waitFor(t, "flock(1) to wait", func() bool {
		if ws, err = m.Waiters(); err != nil {
			t.Fatal(err)
		}
		return len(ws) > 0
	})
	if !slices.Equal(ws, want) {
		t.Errorf("Waiters = %+v, want %+v", ws, want)
	}
	hs, err := m.Holders()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].PID != holder.Pid() {
		t.Errorf("Holders = %+v, want only the child %d", hs, holder.Pid())
	}
	holder.CloseStdin()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("flock(1) after the release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("flock(1) still waiting 10s after the release")
	}
	if ws, err := m.Waiters(); err != nil || len(ws) != 0 {
		t.Errorf("Waiters after the release = %+v, %v", ws, err)
	}
}

// TestLockUsers shrinks a directory under a held and an awaited lock:
// LockUsers must list both beyond the capacity, unallocated, where
// Holders and Waiters stop at the capacity.
func TestLockUsers(t *testing.T) {
	lookFlock(t)
	m := create(t, 10)
	if _, err := m.AllocateAndRetrieveLock(3); err != nil {
		t.Fatal(err)
	}
	c := holdInChild(t, m.Dir(), 3, 8)
	path, err := m.LockFile(8)
	if err != nil {
		t.Fatal(err)
	}
	w := exec.Command("flock", path, "true")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	waitFor(t, "flock(1) to wait", func() bool {
		ws, err := m.Waiters()
		if err != nil {
			t.Fatal(err)
		}
		return len(ws) > 0
	})
	if err := m.Resize(6); err != nil {
		t.Fatal(err)
	}
	wantHolders := []filelock.Holder{
		{ID: 3, PID: c.Pid(), Exclusive: true, Allocated: true},
		{ID: 8, PID: c.Pid(), Exclusive: true, Allocated: false},
	}
	wantWaiters := []filelock.Holder{{ID: 8, PID: w.Process.Pid, Exclusive: true}}
	hs, ws, err := m.LockUsers()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hs, wantHolders) || !slices.Equal(ws, wantWaiters) {
		t.Errorf("LockUsers = %+v, %+v; want %+v, %+v", hs, ws, wantHolders, wantWaiters)
	}
	if hs, err = m.Holders(); err != nil || !slices.Equal(hs, wantHolders[:1]) {
		t.Errorf("Holders = %+v, %v; want %+v", hs, err, wantHolders[:1])
	}
	if ws, err = m.Waiters(); err != nil || len(ws) != 0 {
		t.Errorf("Waiters = %+v, %v; want none below the capacity", ws, err)
	}
}
