//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"
)

// profEnv names a directory into which a child writes profiles of its run,
// for finding where its time goes: cpu.prof, block.prof and mutex.prof
// (every event recorded) for go tool pprof, and trace.out for go tool trace.
// Profiling slows the child, so its samples are not comparable with
// unprofiled ones.
const profEnv = "PROCBENCH_PROF"

// startProfiles starts the profiles that profEnv asks for, if any, and
// returns a function that stops them and writes them out.
func startProfiles() (stop func() error, err error) {
	dir := os.Getenv(profEnv)
	if dir == "" {
		return func() error { return nil }, nil
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu.prof"))
	if err != nil {
		return nil, err
	}
	tr, err := os.Create(filepath.Join(dir, "trace.out"))
	if err != nil {
		return nil, err
	}
	runtime.SetBlockProfileRate(1)
	runtime.SetMutexProfileFraction(1)
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return nil, err
	}
	if err := trace.Start(tr); err != nil {
		return nil, err
	}
	return func() error {
		trace.Stop()
		pprof.StopCPUProfile()
		err := errors.Join(cpu.Close(), tr.Close())
		for _, name := range []string{"block", "mutex"} {
			f, ferr := os.Create(filepath.Join(dir, name+".prof"))
			if ferr == nil {
				ferr = errors.Join(pprof.Lookup(name).WriteTo(f, 0), f.Close())
			}
			err = errors.Join(err, ferr)
		}
		return err
	}, nil
}

// schedstatEnv, set to 1, makes a child print to stderr, as it exits, how
// each of its threads spent the run: on a CPU, waiting for one (runnable,
// but another task held it), or asleep (blocked in the kernel: futex,
// nanosleep, ...), from /proc/self/task/*/schedstat and status. That tells
// a process that sleeps from one that a loaded machine keeps waiting.
const schedstatEnv = "PROCBENCH_SCHEDSTAT"

// printSchedstat prints each thread's schedstat and context switches to w
// if schedstatEnv asks for it. wall is how long the child's work took.
func printSchedstat(w io.Writer, wall time.Duration) {
	if os.Getenv(schedstatEnv) != "1" {
		return
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fmt.Fprintf(w, "schedstat: %v\n", err)
		return
	}
	fmt.Fprintf(w, "schedstat: %d threads, main loop %v wall\n", len(tasks), wall)
	for _, t := range tasks {
		dir := "/proc/self/task/" + t.Name()
		ss, err1 := os.ReadFile(dir + "/schedstat")
		st, err2 := os.ReadFile(dir + "/status")
		if err := errors.Join(err1, err2); err != nil {
			fmt.Fprintf(w, "schedstat %s: %v\n", t.Name(), err)
			continue
		}
		var run, wait, slices int64
		fmt.Sscan(string(ss), &run, &wait, &slices)
		vol, invol := "", ""
		for line := range strings.Lines(string(st)) {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				vol = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
				invol = strings.TrimSpace(v)
			}
		}
		fmt.Fprintf(w, "schedstat tid %s: on-cpu %v, runnable-waiting %v, timeslices %d, voluntary-cs %s, involuntary-cs %s\n",
			t.Name(), time.Duration(run), time.Duration(wait), slices, vol, invol)
	}
}
