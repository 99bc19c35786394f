package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lockdir/lockdir/filelock"
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
file afterwards; first frees the lock of any earlier check that was killed
before it could. Warns when the directory is on a filesystem where flock(2)
may not exclude processes on other machines (NFS, SMB, 9p, FUSE, overlayfs,
...): check runs on this machine only. Shows progress when stderr is a
terminal.`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		procs := fl.Int("procs", 4, "number of contending processes, 1 to 256")
		seconds := fl.Float64("seconds", 2, "how long to run, in seconds (at most 3600)")
		asJSON := fl.Bool("json", false, "print JSON, for scripts: stable fields, listed in lockdir's docs/cli.md")
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

// runCheck runs check's steps: free the locks of killed checks, look at
// the directory, make the counter file, allocate a lock and record it
// there, run the workers, tally and print the result.
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
	if err := freeDeadChecks(m); err != nil {
		return err
	}
	res, err := inspectDir(m, procs)
	if err != nil {
		return err
	}

	// The counter file comes first, locked, so that the lock ID is
	// recorded in it as soon as it is allocated (check_record.go).
	counter, err := createCounter(m.Dir(), procs)
	if err != nil {
		return err
	}
	defer os.Remove(counter.Name())
	defer counter.Close()
	pauseAt("counter")
	l, err := m.AllocateLock()
	if err != nil {
		return err
	}
	res.LockID = l.ID()
	defer func() {
		// The record goes first, so that no later check frees the ID
		// once it is someone else's. A full file system can refuse even
		// this write (and refused the record itself, review 10b: the ID
		// then stayed allocated for good); removing the counter file
		// erases the record as surely, and an unlink needs no space.
		ferr := clearRecord(counter)
		if ferr != nil && os.Remove(counter.Name()) == nil {
			ferr = nil
		}
		if ferr == nil {
			ferr = l.Free()
		}
		if ferr != nil && err == nil {
			err = fmt.Errorf("check: freeing lock %d: %w", res.LockID, ferr)
		}
	}()
	if err := record(counter, res.LockID); err != nil {
		return fmt.Errorf("check: recording lock %d in the counter file: %w", res.LockID, err)
	}
	pauseAt("recorded")

	// From here until check returns, a signal stops the check, and its
	// workers, and check still frees the lock and removes the counter.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	a := workerArgs{exe: exe, dir: m.Dir(), group: g.group, counter: counter.Name(), id: res.LockID}
	p := &progress{on: isTerminal(os.Stderr) && !asJSON, counter: counter, procs: procs, total: d}
	elapsed, err := contend(a, procs, d, sigs, p)
	if err != nil {
		return err
	}
	c, err := readCounts(counter, procs)
	if err != nil {
		return fmt.Errorf("check: reading the counter file: %w", err)
	}
	res.tally(c, elapsed)
	return writeCheck(res, asJSON)
}

// pauseAt stops check for good at the step named by LOCKDIR_CHECK_PAUSE,
// after saying so on stderr: the tests kill it there with SIGKILL.
func pauseAt(step string) {
	if os.Getenv("LOCKDIR_CHECK_PAUSE") != step {
		return
	}
	fmt.Fprintf(stderr, "lockdir: check: paused at %s\n", step)
	for {
		time.Sleep(time.Hour)
	}
}

// inspectDir begins the result of a check of m's directory with what the
// directory itself says: its filesystem, and lock files deleted while in
// use, warning about either.
func inspectDir(m *filelock.Manager, procs int) (*checkResult, error) {
	res := &checkResult{Version: 1, Dir: m.Dir(), Procs: procs}
	res.Filesystem, res.FilesystemWarning = filesystemInfo(m.Dir())
	if res.FilesystemWarning != "" {
		fmt.Fprintf(stderr, "lockdir: warning: %s\n", res.FilesystemWarning)
	}
	var err error
	if res.Unlinked, err = unlinkedInUse(m); err != nil {
		return nil, err
	}
	for _, u := range res.Unlinked {
		fmt.Fprintf(stderr, "lockdir: warning: %s\n", unlinkedWarning(u))
	}
	return res, nil
}

// contend runs procs workers for d, showing p meanwhile, and returns how
// long they ran. A signal on sigs stops them.
func contend(a workerArgs, procs int, d time.Duration, sigs <-chan os.Signal, p *progress) (time.Duration, error) {
	ws, err := startWorkers(a, procs)
	if err != nil {
		return 0, err
	}
	if err := ws.awaitReady(sigs); err != nil {
		return 0, err
	}
	p.start = time.Now()
	ws.release(p.start.Add(d))
	pauseAt("running")
	if err := ws.wait(sigs, p); err != nil {
		return 0, err
	}
	return time.Since(p.start), nil
}

// tally fills in the result from the counter file's counts after a run
// of elapsed.
func (res *checkResult) tally(c counts, elapsed time.Duration) {
	res.Counter = c.counter
	res.PerProcess = c.perProcess
	for _, n := range c.perProcess {
		res.Increments += n
	}
	res.Violations = c.violations
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
}

// writeCheck prints the result, and fails with exitViolated if the check
// found violations.
func writeCheck(res *checkResult, asJSON bool) error {
	if asJSON {
		if err := printJSON(res); err != nil {
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

// printJSON prints v as indented JSON, as status --json and check --json
// do.
func printJSON(v any) error {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progress is the line that check keeps up to date on stderr while it
// runs, if stderr is a terminal.
type progress struct {
	on      bool
	counter *os.File
	procs   int
	start   time.Time
	total   time.Duration
}

// show redraws the progress line.
func (p *progress) show() {
	if !p.on {
		return
	}
	c, err := readCounts(p.counter, p.procs)
	if err != nil {
		return
	}
	line := fmt.Sprintf("check: %.1fs/%.1fs  counter %d  per process %s  violations %d",
		time.Since(p.start).Seconds(), p.total.Seconds(), c.counter, joinCounts(c.perProcess), c.violations)
	fmt.Fprintf(stderr, "\r\033[K%s", line)
}

// clear erases the progress line.
func (p *progress) clear() {
	if p.on {
		fmt.Fprint(stderr, "\r\033[K")
	}
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
	fmt.Fprintf(tw, "per process:\t%s\n", joinCounts(r.PerProcess))
	fmt.Fprintf(tw, "counter:\t%d\n", r.Counter)
	fmt.Fprintf(tw, "violations:\t%d\n", r.Violations)
	if r.OK {
		fmt.Fprintf(tw, "result:\tok: no increment was lost and the lock never had two holders\n")
	} else {
		fmt.Fprintf(tw, "result:\tFAILED: flock(2) did not exclude processes here\n")
	}
	tw.Flush()
}

// joinCounts lists the workers' counts, separated by spaces.
func joinCounts(ns []uint64) string {
	per := make([]string, len(ns))
	for i, n := range ns {
		per[i] = strconv.FormatUint(n, 10)
	}
	return strings.Join(per, " ")
}
