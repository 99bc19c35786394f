//go:build linux

package filelock_test

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// TestRegistryOpenEvictsAtFileLimit: the descriptor cache keeps idle
// lock descriptors up to max(RLIMIT_NOFILE/2, 1024), so with a low limit it
// is bounded only by EMFILE, and only Lock evicts when the process runs
// out ("a process near its limit still gets its descriptors back, because
// running out makes every Manager evict", fdcache.go). Registry operations
// do not: after another Manager replaced the registry (FreeAllLocks, as
// Resize does), this Manager's next Allocate must open the new registry,
// gets EMFILE, and fails, although the Manager itself holds dozens of idle
// descriptors it could give back. (Lock through the same Manager, at the
// same instant, works: it evicts.)
func TestRegistryOpenEvictsAtFileLimit(t *testing.T) {
	// Not parallel: it lowers the process's descriptor limit.
	m := create(t, 1000)
	other := open(t, m.Dir())
	for range 2 { // twice, so that every ID leaves probation and stays cached
		for id := range uint32(64) {
			l := mustRetrieve(t, m, id)
			l.Lock()
			l.Unlock()
		}
	}
	if err := other.FreeAllLocks(); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// Fill the holes below the highest open descriptor (the process's
	// other files), then put the limit just above it: the process is out
	// of descriptors, and closing any of the Manager's idle ones frees a
	// usable slot.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	highest := 0
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > highest {
			highest = fd
		}
	}
	var n uint64
	for {
		fd, err := syscall.Dup(0)
		if err != nil {
			t.Fatal(err)
		}
		if fd > highest {
			syscall.Close(fd)
			n = uint64(fd)
			break
		}
		t.Cleanup(func() { syscall.Close(fd) })
	}
	if idle := fdsUnder(t, m.Dir()); idle < 32 {
		t.Fatalf("only %d descriptors under the directory; the cache kept fewer than expected", idle)
	}
	lim := syscall.Rlimit{Cur: n, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if fd, err := syscall.Dup(0); err == nil {
		syscall.Close(fd)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		t.Fatalf("a descriptor is still free at limit %d", n)
	}
	_, aerr := m.Allocate()
	// Lock at the same limit: it evicts an idle descriptor and works.
	l := mustRetrieve(t, m, 900)
	locked := l.TryLock()
	if locked {
		l.Unlock()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if !locked {
		t.Errorf("TryLock at the descriptor limit failed too; the setup is not what this test means")
	}
	if aerr != nil {
		t.Errorf("Allocate with %d idle lock descriptors of this Manager's own open, at the descriptor limit: %v (EMFILE: %v)",
			64, aerr, errors.Is(aerr, syscall.EMFILE))
	}
}
