//go:build linux

package filelock_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lockdir/lockdir/filelock"
)

// TestSyscallMarkers runs each operation syscountN times between two
// marker system calls, access("/lockdir-syscount/begin/NAME") and
// access("/lockdir-syscount/end/NAME"), for counting the system calls of one
// operation under strace. It is skipped unless LOCKDIR_SYSCOUNT=1;
// docs/performance.md shows how to run it and count.
func TestSyscallMarkers(t *testing.T) {
	if os.Getenv("LOCKDIR_SYSCOUNT") != "1" {
		t.Skip("set LOCKDIR_SYSCOUNT=1 and run under strace -f; see docs/performance.md")
	}
	syscountN := 1000
	if n, err := strconv.Atoi(os.Getenv("LOCKDIR_SYSCOUNT_N")); err == nil && n > 0 {
		syscountN = n
	}
	// One OS thread runs every phase, so that TestSyscallBudget can tell
	// its calls from those of the runtime's other threads.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	phase := func(name string, fn func()) {
		unix.Access("/lockdir-syscount/begin/"+name, unix.F_OK)
		for range syscountN {
			fn()
		}
		unix.Access("/lockdir-syscount/end/"+name, unix.F_OK)
	}

	// A kept descriptor is checked against its file's name once per
	// recheckAfter (recheck.go): under strace that is every hundred ops
	// or so, which would make the counts inexact. LockUnlockRechecked
	// below counts the check itself.
	defer filelock.SetRecheckAfterForTest(time.Hour)()
	m := newManager(t, 4096, 2048)
	l := allocatedLocker(t, m)
	phase("LockUnlock", func() { l.Lock(); l.Unlock() })
	phase("TryLockUnlock", func() { l.TryLock(); l.Unlock() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	phase("LockContextUnlock", func() {
		if err := l.LockContext(ctx); err != nil {
			t.Fatal(err)
		}
		l.Unlock()
	})
	phase("RLockRUnlock", func() { l.RLock(); l.RUnlock() })
	phase("TryRLockRUnlock", func() { l.TryRLock(); l.RUnlock() })
	phase("RLockContextRUnlock", func() {
		if err := l.RLockContext(ctx); err != nil {
			t.Fatal(err)
		}
		l.RUnlock()
	})
	// The first Lock of an ID in a Manager opens its file, and closes the
	// oldest descriptor of an ID locked once (see fdcache.go's probation):
	// touch some IDs first, so that every op in the phase does.
	touchOnce := func(m *filelock.Manager, from, n uint32) {
		for id := from; id < from+n; id++ {
			l, err := m.RetrieveLock(id)
			if err != nil {
				t.Fatal(err)
			}
			l.Lock()
			l.Unlock()
		}
	}
	touchOnce(m, 3000, 64)
	next := uint32(2100)
	phase("FirstLockUnlock", func() {
		fl, err := m.RetrieveLock(next)
		if err != nil {
			t.Fatal(err)
		}
		next++
		fl.Lock()
		fl.Unlock()
	})
	// A short-lived process touching many locks once each (a container
	// engine's ps): RetrieveLock, Lock and Unlock of an ID whose lock file
	// exists but that this Manager has not opened yet.
	cold := newManager(t, 4096, 0)
	for id := range uint32(syscountN) + 64 {
		if _, err := cold.LockFile(id); err != nil {
			t.Fatal(err)
		}
	}
	touchOnce(cold, uint32(syscountN), 64)
	touch := uint32(0)
	phase("ColdTouch", func() {
		cl, err := cold.RetrieveLock(touch)
		if err != nil {
			t.Fatal(err)
		}
		touch++
		cl.Lock()
		cl.Unlock()
	})
	// The creating path: allocate a new ID and lock it for the first
	// time, creating its lock file.
	fresh := newManager(t, uint32(2*syscountN+256), 0)
	for range 64 {
		fl, err := fresh.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		fl.Lock()
		fl.Unlock()
	}
	phase("AllocateFirstLock", func() {
		fl, err := fresh.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		fl.Lock()
		fl.Unlock()
	})
	phase("AllocateLock", func() {
		nl, err := m.AllocateLock()
		if err != nil {
			t.Fatal(err)
		}
		if err := nl.Free(); err != nil {
			t.Fatal(err)
		}
	})
	phase("RetrieveLock", func() {
		if _, err := m.RetrieveLock(7); err != nil {
			t.Fatal(err)
		}
	})
	phase("LocksHeld", func() {
		if _, err := m.LocksHeld(); err != nil {
			t.Fatal(err)
		}
	})

	// A Manager whose kept descriptors are due a check at every Lock: what
	// the check costs, once per recheckAfter in real use.
	filelock.SetRecheckAfterForTest(0)
	rm := newManager(t, 64, 8)
	rl := allocatedLocker(t, rm)
	rl.Lock()
	rl.Unlock()
	phase("LockUnlockRechecked", func() { rl.Lock(); rl.Unlock() })
	filelock.SetRecheckAfterForTest(time.Hour)

	big := newManager(t, 1_000_000, 999_999)
	dir := big.Dir()
	big.Close()
	phase("Open", func() {
		bm, err := filelock.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		unix.Access("/lockdir-syscount/pause", unix.F_OK)
		bm.Close()
		unix.Access("/lockdir-syscount/resume", unix.F_OK)
	})
}
