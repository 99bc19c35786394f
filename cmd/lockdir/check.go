package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

var checkCmd = &command{
	name:    "check",
	args:    "[--procs N] [--seconds S] [--json]",
	summary: "test that flock(2) excludes processes on the directory's filesystem",
	help: `Self-test: allocates a lock, starts N processes that each, for S seconds,
take the lock, increment a counter kept in a file next to the locks and
release it, then checks that no increment was lost and that no two processes
ever held the lock at once. Prints the throughput and the number of
violations; exits 6 on any violation. Frees the lock and removes the counter
file afterwards. Warns when the directory is on a filesystem where flock(2)
may not exclude processes on other machines (NFS, SMB, 9p, FUSE, overlayfs,
...): check runs on this machine only. Shows progress when stderr is a
terminal.`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		procs := fl.Int("procs", 4, "number of contending processes, 1 to 256")
		seconds := fl.Float64("seconds", 2, "how long to run, in seconds (at most 3600)")
		asJSON := fl.Bool("json", false, "print JSON (schema in docs/cli.md)")
		return func(args []string) error {
			if len(args) != 0 {
				return usageError("check", "check: unexpected argument %q", args[0])
			}
			if *procs < 1 || *procs > 256 {
				return usageError("check", "check: --procs %d is out of range: 1 to 256", *procs)
			}
			if !(*seconds > 0 && *seconds <= 3600) {
				return usageError("check", "check: --seconds %v is out of range: more than 0, at most 3600", *seconds)
			}
			return runCheck(g, *procs, time.Duration(*seconds*float64(time.Second)), *asJSON)
		}
	},
}

// The counter file: a shared counter and the PID of the process inside the
// critical section, both only touched under the lock, then one slot per
// worker with its own increments and violations, written by that worker only.
const (
	offCounter  = 0
	offOwner    = 8
	offSlots    = 16
	slotSize    = 16
	offSlotN    = 0
	offSlotViol = 8
)

// checkResult is the output of 'check --json'. Its schema is documented in
// docs/cli.md and is stable: fields may be added, never renamed or removed.
type checkResult struct {
	Version           int      `json:"version"` // schema version, 1
	Dir               string   `json:"dir"`
	Filesystem        string   `json:"filesystem"`         // e.g. "tmpfs", "ext4", "nfs"; "" if unknown
	FilesystemWarning string   `json:"filesystem_warning"` // "" if none
	LockID            uint32   `json:"lock_id"`
	Procs             int      `json:"procs"`
	Seconds           float64  `json:"seconds"`
	Increments        uint64   `json:"increments"`
	PerSecond         float64  `json:"per_second"`
	PerProcess        []uint64 `json:"per_process"`
	Counter           uint64   `json:"counter"`
	Violations        uint64   `json:"violations"`
	OK                bool     `json:"ok"`
	// Unlinked lists lock files and registry.lock deleted while in use
	// (see status); empty where that cannot be seen.
	Unlinked []unlinkedJSON `json:"unlinked"`
}

func runCheck(g *globals, procs int, d time.Duration, asJSON bool) (err error) {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("check: cannot find the lockdir executable to start workers: %w", err)
	}
	m, err := g.openManager(true)
	if err != nil {
		return err
	}
	defer m.Close()
	res := &checkResult{Version: 1, Dir: m.Dir(), Procs: procs, PerProcess: make([]uint64, procs)}
	res.Filesystem, res.FilesystemWarning = filesystemInfo(m.Dir())
	if res.FilesystemWarning != "" {
		fmt.Fprintf(stderr, "lockdir: warning: %s\n", res.FilesystemWarning)
	}
	if res.Unlinked, err = unlinkedInUse(m); err != nil {
		return err
	}
	for _, u := range res.Unlinked {
		fmt.Fprintf(stderr, "lockdir: warning: %s\n", unlinkedWarning(u))
	}

	l, err := m.AllocateLock()
	if err != nil {
		return err
	}
	res.LockID = l.ID()
	defer func() {
		if ferr := l.Free(); ferr != nil && err == nil {
			err = fmt.Errorf("check: freeing lock %d: %w", res.LockID, ferr)
		}
	}()

	counter, err := os.CreateTemp(m.Dir(), ".check-*.counter")
	if err != nil {
		return fmt.Errorf("check: creating the counter file: %w", err)
	}
	defer os.Remove(counter.Name())
	defer counter.Close()
	if err := counter.Truncate(int64(offSlots + slotSize*procs)); err != nil {
		return fmt.Errorf("check: %w", err)
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// Start the workers, wait until each is ready (has opened the lock and
	// the counter file), then tell them all when to stop, so that they
	// contend for the whole run however slowly they start.
	workers := make([]*exec.Cmd, 0, procs)
	gos := make([]io.WriteCloser, 0, procs)
	readies := make([]*bufio.Reader, 0, procs)
	abort := func(err error) error {
		killAll(workers)
		for _, w := range workers {
			w.Wait()
		}
		return err
	}
	for i := range procs {
		w := &exec.Cmd{
			Path: exe,
			// Keep argv[0]: it selects lockdir in test binaries.
			Args: []string{os.Args[0], "check-worker", "--dir", m.Dir(), "--group", g.group,
				"--id", strconv.FormatUint(uint64(res.LockID), 10),
				"--counter", counter.Name(), "--slot", strconv.Itoa(i)},
			Stderr: stderr,
		}
		in, err1 := w.StdinPipe()
		out, err2 := w.StdoutPipe()
		if err := errors.Join(err1, err2); err != nil {
			return abort(fmt.Errorf("check: starting worker: %w", err))
		}
		if err := w.Start(); err != nil {
			return abort(fmt.Errorf("check: starting worker: %w", err))
		}
		workers = append(workers, w)
		gos = append(gos, in)
		readies = append(readies, bufio.NewReader(out))
	}
	ready := make(chan error, 1)
	go func() {
		for _, r := range readies {
			if line, err := r.ReadString('\n'); line != "ready\n" {
				ready <- fmt.Errorf("check: a worker failed to start (%q, %v)", line, err)
				return
			}
		}
		ready <- nil
	}()
	select {
	case err := <-ready:
		if err != nil {
			return abort(err)
		}
	case s := <-sigs:
		abort(nil)
		fmt.Fprintf(stderr, "lockdir: check: %v; stopped\n", s)
		return exitStatus(128 + int(s.(syscall.Signal)))
	}
	start := time.Now()
	until := start.Add(d)
	for _, in := range gos {
		fmt.Fprintf(in, "%d\n", until.UnixNano())
		in.Close()
	}
	exited := make(chan error, procs)
	for _, w := range workers {
		go func() { exited <- w.Wait() }()
	}

	progress := isTerminal(os.Stderr) && !asJSON
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var workerErr error
	for running := procs; running > 0; {
		select {
		case err := <-exited:
			running--
			if err != nil && workerErr == nil {
				workerErr = err
			}
		case s := <-sigs:
			killAll(workers)
			for ; running > 0; running-- {
				<-exited
			}
			if progress {
				fmt.Fprint(stderr, "\r\033[K")
			}
			fmt.Fprintf(stderr, "lockdir: check: %v; stopped\n", s)
			return exitStatus(128 + int(s.(syscall.Signal)))
		case <-tick.C:
			if progress {
				printProgress(counter, procs, time.Since(start), d)
			}
		}
	}
	elapsed := time.Since(start)
	if progress {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if workerErr != nil {
		return fmt.Errorf("check: a worker failed: %w; the result would mean nothing", workerErr)
	}

	buf := make([]byte, offSlots+slotSize*procs)
	if _, err := counter.ReadAt(buf, 0); err != nil {
		return fmt.Errorf("check: reading the counter file: %w", err)
	}
	res.Counter = binary.LittleEndian.Uint64(buf[offCounter:])
	for i := range procs {
		slot := buf[offSlots+slotSize*i:]
		n := binary.LittleEndian.Uint64(slot[offSlotN:])
		res.PerProcess[i] = n
		res.Increments += n
		res.Violations += binary.LittleEndian.Uint64(slot[offSlotViol:])
	}
	// Every lost increment is a violation, and so is a counter that went
	// further than the processes counted.
	if res.Counter < res.Increments {
		res.Violations += res.Increments - res.Counter
	} else {
		res.Violations += res.Counter - res.Increments
	}
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(res.Increments) / res.Seconds
	res.OK = res.Violations == 0

	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printCheck(res)
	}
	if !res.OK {
		return errorf(exitViolated,
			"do not rely on flock(2) on this filesystem: use a local one, such as tmpfs under /run",
			"check: %d violations: processes were not excluded from each other on %s", res.Violations, res.Dir)
	}
	return nil
}

func killAll(cmds []*exec.Cmd) {
	for _, c := range cmds {
		c.Process.Kill()
	}
}

func printProgress(f *os.File, procs int, elapsed, total time.Duration) {
	buf := make([]byte, offSlots+slotSize*procs)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return
	}
	var per []string
	var viol uint64
	for i := range procs {
		slot := buf[offSlots+slotSize*i:]
		per = append(per, strconv.FormatUint(binary.LittleEndian.Uint64(slot[offSlotN:]), 10))
		viol += binary.LittleEndian.Uint64(slot[offSlotViol:])
	}
	line := fmt.Sprintf("check: %.1fs/%.1fs  counter %d  per process %s  violations %d",
		elapsed.Seconds(), total.Seconds(), binary.LittleEndian.Uint64(buf[offCounter:]),
		strings.Join(per, " "), viol)
	fmt.Fprintf(stderr, "\r\033[K%s", line)
}

func printCheck(r *checkResult) {
	fsName := r.Filesystem
	if fsName == "" {
		fsName = "unknown filesystem"
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "directory:\t%s (%s)\n", r.Dir, fsName)
	fmt.Fprintf(tw, "lock:\t%d (allocated for the check, now freed)\n", r.LockID)
	fmt.Fprintf(tw, "processes:\t%d, for %.2fs\n", r.Procs, r.Seconds)
	fmt.Fprintf(tw, "increments:\t%d (%.0f per second)\n", r.Increments, r.PerSecond)
	per := make([]string, len(r.PerProcess))
	for i, n := range r.PerProcess {
		per[i] = strconv.FormatUint(n, 10)
	}
	fmt.Fprintf(tw, "per process:\t%s\n", strings.Join(per, " "))
	fmt.Fprintf(tw, "counter:\t%d\n", r.Counter)
	fmt.Fprintf(tw, "violations:\t%d\n", r.Violations)
	if r.OK {
		fmt.Fprintf(tw, "result:\tok: no increment was lost and the lock never had two holders\n")
	} else {
		fmt.Fprintf(tw, "result:\tFAILED: flock(2) did not exclude processes here\n")
	}
	tw.Flush()
}

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
	f, err := os.OpenFile(counterPath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("lock %d: %v", id, r)
		}
	}()
	// For the tests only: prove that check notices when nothing excludes.
	noLock := os.Getenv("LOCKDIR_CHECK_NO_LOCK") == "1"

	fmt.Fprintln(os.Stdout, "ready")
	var untilNano int64
	if _, err := fmt.Fscanln(os.Stdin, &untilNano); err != nil {
		return fmt.Errorf("reading the time to stop from stdin: %w", err)
	}
	until := time.Unix(0, untilNano)

	pid := uint64(os.Getpid())
	var n, viol uint64
	var b [8]byte
	rd := func(off int64) uint64 {
		if _, err := f.ReadAt(b[:], off); err != nil {
			panic(err)
		}
		return binary.LittleEndian.Uint64(b[:])
	}
	wr := func(off int64, v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		if _, err := f.WriteAt(b[:], off); err != nil {
			panic(err)
		}
	}
	slotOff := int64(offSlots + slotSize*slot)
	for time.Now().Before(until) {
		if !noLock {
			l.Lock()
		}
		if rd(offOwner) != 0 {
			viol++ // someone else is inside
		}
		wr(offOwner, pid)
		c := rd(offCounter)
		if noLock {
			time.Sleep(20 * time.Microsecond) // widen the window for others to come in
		}
		wr(offCounter, c+1)
		if rd(offOwner) != pid {
			viol++ // someone else came in
		}
		wr(offOwner, 0)
		if !noLock {
			l.Unlock()
		}
		n++
		wr(slotOff+offSlotN, n)
		wr(slotOff+offSlotViol, viol)
	}
	return nil
}
