//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A variant is one way of doing a benchmark's work, run as a fresh process
// per sample.
type variant struct {
	name string
	// command returns the command for one run.
	command func() *exec.Cmd
	// before and after, if set, run untimed around each run: after gets
	// the child's stdout and checks that it did the work.
	before func() error
	after  func(stdout string) error
}

// A ratio compares two variants of a group: num / den.
type ratio struct {
	num, den string
	// net subtracts this variant (a process that only starts and exits)
	// from both sides first, if set: what the work costs without the
	// start-up that both pay.
	net string
}

// A group is one benchmark: variants measured against each other.
type group struct {
	name     string // benchmark name without "Benchmark", such as ColdTouch/N=2048
	variants []variant
	ratios   []ratio
}

// A sample is one run of a variant.
type sample struct {
	wall, cpu time.Duration
	inproc    time.Duration // the child's own timing of its work, or 0
}

// inprocKey is how a child reports its own timing on stdout:
// "inproc-ns 12345".
const inprocKey = "inproc-ns"

// run runs v once and measures it.
func (v *variant) run() (sample, error) {
	if v.before != nil {
		if err := v.before(); err != nil {
			return sample{}, fmt.Errorf("%s: setup: %w", v.name, err)
		}
	}
	cmd := v.command()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	wall := time.Since(t0)
	if err != nil {
		return sample{}, fmt.Errorf("%s: %v: %w; stderr: %s", v.name, cmd.Args, err, strings.TrimSpace(stderr.String()))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return sample{}, fmt.Errorf("%s: no rusage", v.name)
	}
	s := sample{wall: wall, cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	for line := range strings.Lines(stdout.String()) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == inprocKey {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return sample{}, fmt.Errorf("%s: bad output %q", v.name, line)
			}
			s.inproc = time.Duration(n)
		}
	}
	if v.after != nil {
		if err := v.after(stdout.String()); err != nil {
			return sample{}, fmt.Errorf("%s: %w", v.name, err)
		}
	}
	return s, nil
}

// realtime wraps every variant's command in "chrt -f 1", so that each child
// runs with SCHED_FIFO priority 1, ahead of every ordinary task. On a
// machine that other jobs keep busy, its wall time then shows what it would
// be on an idle machine: what is left above its CPU time is the child
// sleeping, not waiting for a CPU. The chrt exec adds a constant to every
// variant.
func realtime(groups []group) error {
	chrt, err := exec.LookPath("chrt")
	if err != nil {
		return err
	}
	for _, g := range groups {
		for i := range g.variants {
			v := &g.variants[i]
			command := v.command
			v.command = func() *exec.Cmd {
				cmd := command()
				cmd.Args = append([]string{"chrt", "-f", "1", cmd.Path}, cmd.Args[1:]...)
				cmd.Path = chrt
				return cmd
			}
		}
	}
	return nil
}

// results holds the samples of every variant of every group, in round order.
type results map[string]map[string][]sample

// measure runs one untimed warm-up round and then rounds measured rounds. In
// each round each group runs its variants in an order of their own, drawn
// from a fixed seed, so that no variant always runs first or right after
// another. The rotation this replaced kept each variant's predecessor
// (go-floor always followed flock(1), lockdir go-forkexec-signals), and a
// process's start-up may depend on what ran just before it; in three runs
// each the two orders measured the same within the runs' spread
// (docs/performance.md, "Round seven"). Each sample is printed to w as a
// benchmark line as soon as it is taken.
func measure(w io.Writer, groups []group, rounds int) (results, error) {
	res := results{}
	for _, g := range groups {
		res[g.name] = map[string][]sample{}
	}
	rng := rand.New(rand.NewPCG(12, 2026))
	for r := -1; r < rounds; r++ {
		fmt.Fprintf(os.Stderr, "procbench: round %d of %d\r", r+1, rounds)
		for _, g := range groups {
			for _, k := range rng.Perm(len(g.variants)) {
				v := &g.variants[k]
				s, err := v.run()
				if err != nil {
					return nil, fmt.Errorf("%s: %w", g.name, err)
				}
				if r < 0 {
					continue // warm-up: page cache, binaries, dentries
				}
				res[g.name][v.name] = append(res[g.name][v.name], s)
				line := fmt.Sprintf("Benchmark%s/impl=%s 1 %d ns/op %d cpu-ns/op", g.name, v.name, s.wall.Nanoseconds(), s.cpu.Nanoseconds())
				if s.inproc > 0 {
					line += fmt.Sprintf(" %d inproc-ns/op", s.inproc.Nanoseconds())
				}
				fmt.Fprintln(w, line)
			}
		}
	}
	fmt.Fprintln(os.Stderr)
	return res, nil
}

// benchmark runs groups for rounds rounds, with SCHED_FIFO if fifo is
// set, and prints header, the samples and the summary to w. perOp gives
// the IDs per op of the groups that have them, for per-ID figures.
func benchmark(w io.Writer, header string, groups []group, rounds int, fifo bool, perOp map[string]int) error {
	if fifo {
		if err := realtime(groups); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, header)
	res, err := measure(w, groups, rounds)
	if err != nil {
		return err
	}
	summarize(w, groups, res, perOp)
	return nil
}

// median is the median of d, which it leaves as it is.
func median[T time.Duration | float64](d []T) T {
	s := slices.Clone(d)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// metric picks one measure out of a sample.
type metric struct {
	name string
	get  func(sample) time.Duration
}

var metrics = []metric{
	{"wall", func(s sample) time.Duration { return s.wall }},
	{"cpu", func(s sample) time.Duration { return s.cpu }},
	{"inproc", func(s sample) time.Duration { return s.inproc }},
}

func column(ss []sample, m metric) []time.Duration {
	d := make([]time.Duration, len(ss))
	for i, s := range ss {
		d[i] = m.get(s)
	}
	return d
}

// summarize prints, as comment lines, each variant's medians and each
// ratio: the ratio of the medians, and the median and range of the
// per-round ratios (the samples of one round ran next to each other).
func summarize(w io.Writer, groups []group, res results, perOp map[string]int) {
	for _, g := range groups {
		fmt.Fprintf(w, "# %s: medians of %d rounds\n", g.name, len(res[g.name][g.variants[0].name]))
		for _, v := range g.variants {
			ss := res[g.name][v.name]
			fmt.Fprintf(w, "#   %-14s", v.name)
			for _, m := range metrics {
				d := column(ss, m)
				if median(d) == 0 {
					continue
				}
				fmt.Fprintf(w, "  %s %s", m.name, fmtDur(median(d)))
				if n := perOp[g.name]; n > 0 && median(column(ss, metrics[2])) > 0 {
					fmt.Fprintf(w, " (%s/ID)", fmtDur(median(d)/time.Duration(n)))
				}
			}
			fmt.Fprintln(w)
		}
		for _, r := range g.ratios {
			num, den := res[g.name][r.num], res[g.name][r.den]
			var floor []sample
			label := r.num + " / " + r.den
			if r.net != "" {
				floor = res[g.name][r.net]
				label = "(" + r.num + " - " + r.net + ") / (" + r.den + " - " + r.net + ")"
			}
			fmt.Fprintf(w, "# ratio %s %s:", g.name, label)
			for _, m := range metrics {
				if median(column(num, m)) == 0 || median(column(den, m)) == 0 {
					continue
				}
				if floor != nil && m.name == "inproc" {
					continue // in-process timing has no start-up to subtract
				}
				fmt.Fprintf(w, " %s %s", m.name, ratioText(column(num, m), column(den, m), floorColumn(floor, m)))
			}
			fmt.Fprintln(w)
		}
	}
}

func floorColumn(ss []sample, m metric) []time.Duration {
	if ss == nil {
		return nil
	}
	return column(ss, m)
}

// ratioText formats num/den as the ratio of the medians followed by the
// median and range of the per-round ratios, subtracting floor (per round)
// from both first if it is not nil.
func ratioText(num, den, floor []time.Duration) string {
	n := min(len(num), len(den))
	per := make([]float64, 0, n)
	for i := range n {
		a, b := num[i], den[i]
		if floor != nil {
			a, b = a-floor[i], b-floor[i]
		}
		if b > 0 {
			per = append(per, float64(a)/float64(b))
		}
	}
	mn, md := median(num), median(den)
	if floor != nil {
		mf := median(floor)
		mn, md = mn-mf, md-mf
	}
	if md <= 0 || len(per) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx (per round %.2fx [%.2f, %.2f])", float64(mn)/float64(md), median(per), slices.Min(per), slices.Max(per))
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d >= time.Microsecond:
		return fmt.Sprintf("%.2fµs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%dns", d.Nanoseconds())
}
