//go:build linux

// Command procbench runs lockdir's whole-process benchmarks, in which every
// sample is a fresh process. The parent times each child from fork to
// reaping (wall) and reads its user+system CPU time from the rusage that
// wait4 returns, which covers every thread of the child and the children it
// reaped. The variants of a benchmark alternate in one run, in a rotating
// order, so that a machine whose load drifts shifts them together.
//
//	go run ./internal/procbench cold [-dir /dev/shm] [-n 2048,10000] [-rounds 15]
//	go run ./internal/procbench cli [-dir /dev/shm] [-rounds 25] [-copies 3]
//
// cold is issue 11's short-lived process: a fresh process that opens a lock
// directory and, for each of N allocated IDs whose lock files exist, calls
// RetrieveLock, Lock and Unlock once (ColdTouch), or that allocates N new
// IDs and locks each once (ColdCreate). The baselines open, flock(LOCK_EX),
// flock(LOCK_UN) and close N plain files, existing or new, which is what a
// file-per-lock backend such as Podman's does per lock.
//
// cli is issue 12's script call: "lockdir lock 7 -- true" against
// "flock FILE true" (util-linux) and against minimal Go programs that only
// run true with os/exec (minexec, and minexecafero, which
// also links github.com/spf13/afero).
//
// setup makes, for investigating one child by hand (under strace, perf or
// with PROCBENCH_PROF set), ColdTouch's two directories under DIR and prints
// the environment that runs each child.
//
// Each sample is printed as a benchmark line that benchstat reads, with the
// whole process as the op: ns/op is wall time, cpu-ns/op user+system CPU
// time (benchstat shows cpu-sec/op). Medians, per-round ratios and binary
// sizes follow as comment lines. Progress goes to stderr. See
// docs/performance.md, "Short-lived process" and "CLI start-up".
//
// Files: main.go parses the command line; cold.go is the cold benchmark,
// its children's roles included, and setup; cli.go the cli benchmark;
// measure.go runs the variants, one process per sample, and summarizes
// them; prof.go profiles a child on request.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	if len(os.Args) < 2 {
		usage()
	}
	fl := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fl.String("dir", "/dev/shm", "make the lock directories and files under `DIR`")
	rounds := fl.Int("rounds", 0, "measured rounds, each running every variant once (default 15 for cold, 25 for cli)")
	fifo := fl.Bool("fifo", false, "run each child under chrt -f 1 (SCHED_FIFO), ahead of the machine's other work")
	var err error
	switch os.Args[1] {
	case "cold":
		ns := fl.String("n", "2048,10000", "comma-separated numbers of IDs")
		extra := fl.Bool("extra", false, "also run ColdTouch's diagnostic variants lockdir-max40, lockdir-pregrow and baseline-keep")
		fl.Parse(os.Args[2:])
		var sizes []int
		if sizes, err = parseSizes(*ns); err == nil {
			err = runCold(os.Stdout, coldConfig{dir: *dir, sizes: sizes, rounds: orDefault(*rounds, 15), extra: *extra, fifo: *fifo})
		}
	case "cli":
		lockdir := fl.String("lockdir", "", "the lockdir binary to measure (default: build ./cmd/lockdir)")
		copies := fl.Int("copies", 3, "copies of each binary that its variant's runs take in turn")
		fl.Parse(os.Args[2:])
		err = runCLI(os.Stdout, cliConfig{dir: *dir, rounds: orDefault(*rounds, 25), lockdir: *lockdir, fifo: *fifo, copies: *copies})
	case "setup":
		n := fl.Int("n", 2048, "number of IDs")
		fl.Parse(os.Args[2:])
		if fl.NArg() != 1 {
			usage()
		}
		err = runSetup(os.Stdout, fl.Arg(0), *n)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "procbench: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: procbench cold [-dir DIR] [-n N,...] [-rounds R] [-extra] [-fifo]\n       procbench cli [-dir DIR] [-rounds R] [-fifo] [-lockdir BINARY] [-copies N]\n       procbench setup [-n N] DIR")
	os.Exit(2)
}

func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-n %s: want positive numbers", s)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}
