package filelock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lockdir/lockdir/filelock"
)

// TestWaitFigures measures how LockContext waits, against a raw flock(2)
// blocked on a descriptor of its own in the same run, and prints the
// results as FIGURE lines for docs/performance.md. It asserts only that
// every wait ends holding the lock (or, when cancelled, holding nothing);
// the figures are measurements, not budgets. It is skipped unless
// LOCKDIR_FIGURES=1:
//
//	LOCKDIR_FIGURES=1 go test -run TestWaitFigures -v ./filelock/
//
// LOCKDIR_FIGURES_WAIT (default 10s) is the length of the contended wait
// whose CPU time is measured, and LOCKDIR_FIGURES_ROUNDS (default 200) the
// number of rounds of each latency measurement.
//
//   - wait-cpu: the process's CPU time (getrusage, every thread) over a
//     wait of LOCKDIR_FIGURES_WAIT for a lock that another process holds
//     and then releases.
//   - wake: the time from another process's flock(LOCK_UN), read from the
//     wall clock just before the call, to the return of the waiting call
//     in this process, with the waiter blocked in the kernel first.
//   - cancel: the time from cancel() to the return of a LockContext that
//     waits in the kernel or queues behind a holder in the process.
func TestWaitFigures(t *testing.T) {
	if os.Getenv("LOCKDIR_FIGURES") != "1" {
		t.Skip("set LOCKDIR_FIGURES=1 to measure; see docs/performance.md")
	}
	wait := 10 * time.Second
	if s := os.Getenv("LOCKDIR_FIGURES_WAIT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		wait = d
	}
	rounds := 200
	if s := os.Getenv("LOCKDIR_FIGURES_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		rounds = n
	}
	m, err := filelock.Create(filepath.Join(tmpfsDir(t), "locks"), 16)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	const id = 7
	path, err := m.LockFile(id)
	if err != nil {
		t.Fatal(err)
	}
	ino, pid := inode(t, path), os.Getpid()
	raw, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(raw)
	l := mustRetrieve(t, m, id)
	holder := startRW(t, m.Dir(), id)
	hold := func() {
		holder.Send("rawex")
		holder.Expect("locked", patience)
	}
	// release makes the holder let go and returns when it called flock.
	release := func() int64 {
		holder.Send("rawun")
		t0, err := strconv.ParseInt(holder.Next(patience), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return t0
	}
	inKernel := func() {
		if !eventually(func() bool { return procLockWaiters(t, pid, ino) > 0 }) {
			t.Fatal("the waiter never showed in /proc/locks")
		}
	}

	type waiter struct {
		name   string
		lock   func(ctx context.Context) error
		unlock func()
	}
	waiters := []waiter{
		{"rawflock", func(context.Context) error { return unix.Flock(raw, unix.LOCK_EX) }, func() { unix.Flock(raw, unix.LOCK_UN) }},
		{"LockContext", l.LockContext, l.Unlock},
		{"RLockContext", l.RLockContext, l.RUnlock},
		{"Lock", func(context.Context) error { l.Lock(); return nil }, l.Unlock},
	}

	// CPU time of one long contended wait each.
	hold()
	for _, w := range waiters[:3] {
		ctx, cancel := context.WithCancel(t.Context())
		before := cpuTime()
		c := start(w.name, func() error { return w.lock(ctx) })
		time.Sleep(wait)
		release()
		if err := c.wait(t, "the holder let go"); err != nil {
			t.Fatal(err)
		}
		used := cpuTime() - before
		cancel()
		w.unlock()
		hold()
		fmt.Printf("FIGURE wait-cpu %s %v in %v\n", w.name, used, wait)
	}

	// Wake-up latency, the waiters interleaved round by round.
	lat := make([][]time.Duration, len(waiters))
	for range rounds {
		for i, w := range waiters {
			ctx, cancel := context.WithCancel(t.Context())
			at := make(chan int64, 1)
			c := start(w.name, func() error {
				err := w.lock(ctx)
				at <- time.Now().UnixNano()
				return err
			})
			inKernel()
			t0 := release()
			if err := c.wait(t, "the holder let go"); err != nil {
				t.Fatal(err)
			}
			lat[i] = append(lat[i], time.Duration(<-at-t0))
			cancel()
			w.unlock()
			hold()
		}
	}
	for i, w := range waiters {
		fmt.Printf("FIGURE wake %s median %v p10 %v p90 %v (%d rounds)\n", w.name, pct(lat[i], 50), pct(lat[i], 10), pct(lat[i], 90), rounds)
	}
	for i, w := range waiters[1:] {
		fmt.Printf("FIGURE wake-ratio %s/rawflock median %.2f\n", w.name, float64(pct(lat[i+1], 50))/float64(pct(lat[0], 50)))
	}

	// Cancellation, in the kernel and queued in the process.
	var inK, queued []time.Duration
	other := mustRetrieve(t, m, id)
	for range rounds {
		ctx, cancel := context.WithCancel(t.Context())
		c := startLockContext(ctx, l)
		inKernel()
		begin := time.Now()
		cancel()
		err := c.wait(t, "it was cancelled")
		inK = append(inK, time.Since(begin))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("LockContext cancelled in the kernel: %v", err)
		}
		release()

		other.RLock() // in the process: a writer queues behind it
		ctx, cancel = context.WithCancel(t.Context())
		c = startLockContext(ctx, l)
		writerQueued(t, other)
		begin = time.Now()
		cancel()
		err = c.wait(t, "it was cancelled")
		queued = append(queued, time.Since(begin))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("LockContext cancelled in the queue: %v", err)
		}
		other.RUnlock()
		hold()
	}
	fmt.Printf("FIGURE cancel in-kernel median %v p90 %v max %v (%d rounds)\n", pct(inK, 50), pct(inK, 90), pct(inK, 100), rounds)
	fmt.Printf("FIGURE cancel queued median %v p90 %v max %v (%d rounds)\n", pct(queued, 50), pct(queued, 90), pct(queued, 100), rounds)
	holder.Wait(childExit)
}

// pct returns the p-th percentile of ds (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
