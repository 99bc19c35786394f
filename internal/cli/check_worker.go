package cli

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/lockdir/lockdir/lock"
)

var checkWorkerCmd = &command{
	name:    "check-worker",
	args:    "--dir DIR --id ID --counter FILE --slot I",
	summary: "internal: one process of 'lockdir check'",
	hidden:  true,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		id := fl.Uint64("id", 0, "lock ID")
		counterPath := fl.String("counter", "", "counter file")
		slot := fl.Int("slot", 0, "this worker's slot in the counter file")
		return func(args []string) error {
			err := checkWorker(g, uint32(*id), *counterPath, *slot)
			if err != nil {
				return fmt.Errorf("check-worker: %w", err)
			}
			return nil
		}
	},
}

// checkWorker opens the lock and the counter file, prints "ready", reads
// the time to stop at (Unix nanoseconds) from stdin, and increments the
// counter under the lock until then.
func checkWorker(g *globals, id uint32, counterPath string, slot int) (err error) {
	m, err := g.openManager(false)
	if err != nil {
		return err
	}
	defer m.Close()
	l, err := m.RetrieveLock(id)
	if err != nil {
		return err
	}
	f, err := openCounter(counterPath)
	if err != nil {
		return err
	}
	defer f.Close()
	// While a worker runs, its check's lock ID is in use, even if the
	// check itself was killed (check_record.go).
	if err := lockShared(f); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("lock %d: %v", id, r)
		}
	}()
	until, err := awaitStart()
	if err != nil {
		return err
	}
	w := &contender{
		l:       l,
		c:       &counterFile{f: f},
		slotOff: slotOffset(slot),
		pid:     uint64(os.Getpid()),
		// For the tests only: prove that check notices when nothing excludes.
		noLock: os.Getenv("LOCKDIR_CHECK_NO_LOCK") == "1",
	}
	for time.Now().Before(until) {
		w.round()
	}
	return nil
}

// awaitStart tells the parent that this worker is ready and reads from it
// the time to stop at.
func awaitStart() (until time.Time, err error) {
	fmt.Fprintln(os.Stdout, "ready")
	var untilNano int64
	if _, err := fmt.Fscanln(os.Stdin, &untilNano); err != nil {
		return time.Time{}, fmt.Errorf("reading the time to stop from stdin: %w", err)
	}
	return time.Unix(0, untilNano), nil
}

// contender is one worker's side of the contention: it increments the
// shared counter under the lock and counts, in its own slot, its
// increments and the times it found another process inside.
type contender struct {
	l       lock.Locker
	c       *counterFile
	slotOff int64
	pid     uint64
	noLock  bool
	n, viol uint64
}

// round takes the lock, increments the counter, releases the lock and
// records the round in the worker's slot.
func (w *contender) round() {
	if !w.noLock {
		w.l.Lock()
	}
	w.increment()
	if !w.noLock {
		w.l.Unlock()
	}
	w.n++
	w.c.put(w.slotOff+offSlotN, w.n)
	w.c.put(w.slotOff+offSlotViol, w.viol)
}

// increment is the critical section: it marks the counter file as owned
// by this process, increments the counter, and counts a violation if
// another process was inside when it came in or came in meanwhile.
func (w *contender) increment() {
	c := w.c
	if c.get(offOwner) != 0 {
		w.viol++ // someone else is inside
	}
	c.put(offOwner, w.pid)
	n := c.get(offCounter)
	if w.noLock {
		time.Sleep(20 * time.Microsecond) // widen the window for others to come in
	}
	c.put(offCounter, n+1)
	if c.get(offOwner) != w.pid {
		w.viol++ // someone else came in
	}
	c.put(offOwner, 0)
}
