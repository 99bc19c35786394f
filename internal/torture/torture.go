//go:build linux

// Package torture holds the multiprocess torture tests of filelock: real
// processes that take locks under load, are killed with SIGKILL while they
// hold them, and allocate and free in a storm while being killed at random
// instants. torture_test.go runs the parent side; this file is the child
// side, which the test binary runs when internal/childproc re-executes it in
// a role of namespace "torture" (see Main).
//
// Children write what they do to append-only log files, one write(2) per
// line, so that a child killed at any instant leaves a log that is complete
// up to its last finished line (the page cache survives the death of the
// process; no fsync is needed).
package torture

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/internal/childproc"
	"github.com/lockdir/lockdir/lock"
)

// ChildArgs configures a child.
type ChildArgs struct {
	Dir        string // lock directory
	Work       string // directory of counters, markers and logs
	IDs        int    // mutex: lock IDs 0..IDs-1 are shared
	Goroutines int    // mutex: goroutines per process
	Deadline   int64  // mutex: CLOCK_MONOTONIC ns at which to stop; 0 = until killed
	Hold       int    // mutex: microseconds to sleep inside the critical section (0 = yield)
	Capacities []uint32
	Seed       uint64
	Fsync      bool // storm: WithFsync(true), which widens the window between journal and page writes
}

// Mono returns CLOCK_MONOTONIC in nanoseconds; it is the same clock in
// every process of the machine, unlike time.Now's monotonic reading.
func Mono() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// Main runs the child role this process was started in (namespace
// "torture", with ChildArgs as its arguments), if any, and exits; it returns
// false in the parent. TestMain calls it first.
func Main() bool {
	role := childproc.Role("torture")
	if role == "" {
		return false
	}
	var a ChildArgs
	if err := childproc.Args(&a); err != nil {
		fatal("%v", err)
	}
	switch role {
	case "mutex":
		childMutex(a)
	case "storm":
		childStorm(a)
	default:
		fatal("unknown role %q", role)
	}
	os.Exit(0)
	return true
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "torture child %d: %s\n", os.Getpid(), fmt.Sprintf(format, args...))
	os.Exit(3)
}

// appendLog is a log file written one line per write(2) with O_APPEND, so
// that lines of concurrent writers, in this process or others, never
// interleave and a SIGKILL never loses a line whose write returned. A
// SIGKILL can tear a write that crosses a page boundary of the file,
// though: the kernel checks for a fatal signal between the pages it
// copies. So records are framed (see stormRecord), and a torn one cannot
// be glued to the next and misread.
type appendLog struct{ f *os.File }

func openLog(path string) appendLog {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fatal("%v", err)
	}
	return appendLog{f}
}

func (l appendLog) printf(format string, args ...any) {
	if _, err := l.f.WriteString(fmt.Sprintf(format, args...)); err != nil {
		fatal("log: %v", err)
	}
}

// Paths of the mutex test's per-ID files.
func CounterPath(work string, id int) string { return filepath.Join(work, "counter-"+strconv.Itoa(id)) }
func MarkerPath(work string, id int) string  { return filepath.Join(work, "held-"+strconv.Itoa(id)) }
func MutexLogPath(work string, pid int) string {
	return filepath.Join(work, "mutex-"+strconv.Itoa(pid)+".log")
}

// ReadCounter parses a counter file; a missing file is 0.
func ReadCounter(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// childMutex runs the critical-section load: each goroutine repeatedly
// locks a random shared ID and, holding it, does a deliberately non-atomic
// read-modify-write of the ID's counter file. It logs to its own file:
//
//	S id t pid    acquired id at CLOCK_MONOTONIC t and found the hold marker
//	              of process pid, which must have died holding the lock
//	D id v        incremented id's counter to v (logged before unlocking)
//
// At a normal exit it prints the number of increments per ID as JSON.
func childMutex(a ChildArgs) {
	m, err := filelock.Open(a.Dir)
	if err != nil {
		fatal("%v", err)
	}
	pid := os.Getpid()
	c := &mutexChild{a: a, log: openLog(MutexLogPath(a.Work, pid)), me: strconv.Itoa(pid), lockers: make([]lock.Locker, a.IDs)}
	for id := range c.lockers {
		if c.lockers[id], err = m.RetrieveLock(uint32(id)); err != nil {
			fatal("%v", err)
		}
	}
	var (
		mu   sync.Mutex
		done = make([]int, a.IDs)
		wg   sync.WaitGroup
	)
	for g := range a.Goroutines {
		wg.Go(func() {
			mine := c.run(rand.New(rand.NewPCG(a.Seed, uint64(g))))
			mu.Lock()
			for i, n := range mine {
				done[i] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		fatal("%v", err)
	}
	json.NewEncoder(os.Stdout).Encode(done)
}

// mutexChild is what the goroutines of a mutex child share.
type mutexChild struct {
	a       ChildArgs
	log     appendLog
	me      string // this process's PID, as the hold marker records it
	lockers []lock.Locker
}

// run is one goroutine of a mutex child: until the deadline, it locks a
// random ID and increments its counter. It returns its increments per ID.
func (c *mutexChild) run(rng *rand.Rand) []int {
	mine := make([]int, c.a.IDs)
	for c.a.Deadline == 0 || Mono() < c.a.Deadline {
		id := rng.IntN(c.a.IDs)
		l := c.lockers[id]
		l.Lock()
		c.increment(id, rng)
		l.Unlock()
		mine[id]++
	}
	return mine
}

// increment is the critical section of lock id: it logs a hold marker
// left by a process that died holding the lock, leaves its own, makes the
// read-modify-write of the counter that only the lock makes safe, logs it
// and removes its marker.
func (c *mutexChild) increment(id int, rng *rand.Rand) {
	a := c.a
	t := Mono()
	marker := MarkerPath(a.Work, id)
	if b, err := os.ReadFile(marker); err == nil {
		c.log.printf("S %d %d %s\n", id, t, strings.TrimSpace(string(b)))
	}
	if err := os.WriteFile(marker, []byte(c.me), 0o600); err != nil {
		fatal("%v", err)
	}
	path := CounterPath(a.Work, id)
	v, err := ReadCounter(path)
	if err != nil {
		fatal("counter %d: %v", id, err)
	}
	if a.Hold > 0 {
		time.Sleep(time.Duration(rng.IntN(a.Hold)+1) * time.Microsecond)
	} else {
		runtime.Gosched()
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(v+1)), 0o600); err != nil {
		fatal("%v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		fatal("%v", err)
	}
	c.log.printf("D %d %d\n", id, v+1)
	if err := os.Remove(marker); err != nil {
		fatal("%v", err)
	}
}

// StormLogPath is the storm's shared log.
func StormLogPath(work string) string { return filepath.Join(work, "storm.log") }

// childStorm allocates and frees as fast as it can until it is killed. It
// appends to the shared storm log, with one write(2) per line:
//
//	A id pid     after AllocateLock or AllocateAndRetrieveLock returned id
//	F id pid     before calling Free on id, which pid owns; from this line
//	             on pid no longer owns id, whether or not the free completes
//
// framed by stormRecord, so a kill between an allocation and its A line,
// or between an F line and the end of the free, leaks the ID (allocated,
// unowned) but can never make two owners; a kill inside the write of an F
// line leaves the ID owned by the dead process, and allocated. It prints
// "ready" once the manager is open.
func childStorm(a ChildArgs) {
	m, err := filelock.Open(a.Dir, filelock.WithFsync(a.Fsync))
	if err != nil {
		fatal("%v", err)
	}
	pid := os.Getpid()
	log := openLog(StormLogPath(a.Work))
	os.Stdout.WriteString("ready\n")
	rng := rand.New(rand.NewPCG(a.Seed, uint64(pid)))
	var owned []uint32
	maxCap := a.Capacities[len(a.Capacities)-1]
	for {
		switch r := rng.IntN(1000); {
		case r < 5 && len(a.Capacities) > 1:
			// Resize, which replaces the registry through a
			// temporary file and a rename.
			c := a.Capacities[rng.IntN(len(a.Capacities))]
			if err := m.Resize(c); err != nil && !errors.Is(err, lock.ErrAllocated) {
				fatal("resize %d: %v", c, err)
			}
		case r < 500 || len(owned) == 0:
			var l lock.Locker
			if r%3 == 0 {
				l, err = m.AllocateAndRetrieveLock(uint32(rng.IntN(int(maxCap))))
			} else {
				l, err = m.AllocateLock()
			}
			switch {
			case err == nil:
				log.printf(stormRecord, "A", l.ID(), pid)
				owned = append(owned, l.ID())
			case errors.Is(err, lock.ErrAllocated), errors.Is(err, lock.ErrInvalidID), errors.Is(err, lock.ErrNoFreeLocks):
			default:
				fatal("allocate: %v", err)
			}
		default:
			i := rng.IntN(len(owned))
			id := owned[i]
			owned[i] = owned[len(owned)-1]
			owned = owned[:len(owned)-1]
			log.printf(stormRecord, "F", id, pid)
			l, err := m.RetrieveLock(id)
			if err == nil {
				err = l.Free()
			} else if errors.Is(err, lock.ErrInvalidID) {
				// Cannot happen: a shrink past an allocated ID fails.
				fatal("owned id %d beyond capacity: %v", id, err)
			}
			if err != nil {
				fatal("free %d: %v", id, err)
			}
		}
	}
}

// stormRecord frames a storm log record: a newline first, so that a record
// torn by a kill is never joined to the next one, and a final "." that a
// torn record lacks.
const stormRecord = "\n%s %d %d .\n"

// StormEvent is one record of the storm log.
type StormEvent struct {
	Op  byte // 'A' or 'F'
	ID  uint32
	PID int
}

// ParseStormLine parses one line of the storm log. It reports false for a
// record torn by a kill, and for the empty lines between records, which
// the caller tells apart by the line being empty.
func ParseStormLine(line string) (StormEvent, bool) {
	f := strings.Fields(line)
	if len(f) != 4 || len(f[0]) != 1 || (f[0] != "A" && f[0] != "F") || f[3] != "." {
		return StormEvent{}, false
	}
	id, err1 := strconv.ParseUint(f[1], 10, 32)
	pid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return StormEvent{}, false
	}
	return StormEvent{Op: f[0][0], ID: uint32(id), PID: pid}, true
}
