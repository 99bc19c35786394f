//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// cliConfig configures the CLI start-up benchmark.
type cliConfig struct {
	dir     string // parent of the lock directory and flock(1)'s file
	rounds  int
	lockdir string // the lockdir binary; built if empty
	goCmd   string // the go command; default $GO, else go
	fifo    bool   // run the children with SCHED_FIFO (see realtime)
	// copies is how many copies of each binary the runs of its variants
	// take turns with (1 or more). Two copies of one binary, the same
	// bytes in files of their own, differed by up to 3% in start-up time
	// (docs/performance.md, "Round seven"): where a file's pages happen
	// to lie in memory moves a ratio as much as a change worth measuring.
	copies int
}

// The minimal Go programs, built from this package's testdata.
const (
	minexecPkg      = "github.com/lockdir/lockdir/internal/procbench/minexec"
	minexecAferoPkg = "github.com/lockdir/lockdir/internal/procbench/minexecafero"
	minexecSigPkg   = "github.com/lockdir/lockdir/internal/procbench/minexecsig"
	minForkExecPkg  = "github.com/lockdir/lockdir/internal/procbench/minforkexec"
	lockdirPkg      = "github.com/lockdir/lockdir/cmd/lockdir"
)

// build builds the packages into dir with one go build, which names each
// binary after the last element of its package path. It must run inside
// the lockdir module.
func (c *cliConfig) build(dir string, pkgs ...string) error {
	goCmd := c.goCmd
	if goCmd == "" {
		goCmd = os.Getenv("GO")
	}
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.Command(goCmd, append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %v: %w (run procbench cli inside the lockdir module, as make bench-cli does)", pkgs, err)
	}
	return nil
}

// runCLI measures "lockdir lock 7 -- true" against "flock FILE true" and
// the minimal Go programs, and prints the samples, a summary and the
// binaries' sizes to w. The lock directory is created, and lock 7's file
// with it, before the first timed run: the common case of a script's call.
func runCLI(w io.Writer, c cliConfig) error {
	root, err := os.MkdirTemp(c.dir, "procbench-cli-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	bins, err := c.buildAll(filepath.Join(root, "bin"))
	if err != nil {
		return err
	}
	env, lockFile, err := prepareLocks(root, bins.lockdir)
	if err != nil {
		return err
	}
	copies, err := bins.copied(max(c.copies, 1))
	if err != nil {
		return err
	}
	g := cliGroup(w, bins, copies, env, lockFile)
	header := fmt.Sprintf("# procbench cli: %d rounds, lock directory and flock file under %s, %d CPUs, SCHED_FIFO %v, %d copies of each binary", c.rounds, c.dir, numCPU(), c.fifo, max(c.copies, 1))
	if err := benchmark(w, header, []group{g}, c.rounds, c.fifo, nil); err != nil {
		return err
	}
	return printSizes(w, bins)
}

// cliBinaries are the programs the CLI benchmark runs.
type cliBinaries struct {
	lockdir, minexec, minexecAfero, minexecSig, minForkExec string
}

// copied makes n-1 copies of each binary, each a file of its own next to
// the minimal programs (lockdir's too, even if c names one elsewhere), and
// returns, by binary, its n files: itself first.
func (b cliBinaries) copied(n int) (map[string][]string, error) {
	dir := filepath.Dir(b.minexec)
	copies := make(map[string][]string)
	for _, path := range []string{b.lockdir, b.minexec, b.minexecAfero, b.minexecSig, b.minForkExec} {
		copies[path] = []string{path}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		for i := 1; i < n; i++ {
			cp := filepath.Join(dir, fmt.Sprintf("%s.copy%d", filepath.Base(path), i))
			if err := os.WriteFile(cp, data, 0o755); err != nil {
				return nil, err
			}
			copies[path] = append(copies[path], cp)
		}
	}
	return copies, nil
}

// buildAll builds the minimal Go programs into bin, and lockdir unless
// c names a lockdir binary.
func (c *cliConfig) buildAll(bin string) (cliBinaries, error) {
	b := cliBinaries{
		lockdir:      c.lockdir,
		minexec:      filepath.Join(bin, "minexec"),
		minexecAfero: filepath.Join(bin, "minexecafero"),
		minexecSig:   filepath.Join(bin, "minexecsig"),
		minForkExec:  filepath.Join(bin, "minforkexec"),
	}
	pkgs := []string{minexecPkg, minexecAferoPkg, minexecSigPkg, minForkExecPkg}
	if b.lockdir == "" {
		pkgs = append(pkgs, lockdirPkg)
		b.lockdir = filepath.Join(bin, "lockdir")
	}
	fmt.Fprintf(os.Stderr, "procbench: building %v\n", pkgs)
	return b, c.build(bin, pkgs...)
}

// prepareLocks creates, under root, the lock directory with lockdir init
// and the file for flock(1), and returns the environment that names the
// directory.
func prepareLocks(root, lockdir string) (env []string, lockFile string, err error) {
	ld := filepath.Join(root, "ld")
	env = append(os.Environ(), "LOCKDIR_DIR="+ld)
	initCmd := exec.Command(lockdir, "init")
	initCmd.Env = env
	if out, err := initCmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("lockdir init: %v: %s", err, out)
	}
	lockFile = filepath.Join(root, "flockfile")
	if err := os.WriteFile(lockFile, nil, 0o600); err != nil {
		return nil, "", err
	}
	return env, lockFile, nil
}

// cliGroup returns the CLI benchmark's variants and ratios, flock(1)'s
// left out, and said so on w, where it is not installed. Each variant's
// runs take the copies of its binary in turn (copied's; a binary without
// copies runs itself).
func cliGroup(w io.Writer, bins cliBinaries, copies map[string][]string, env []string, lockFile string) group {
	run := func(path string, args ...string) func() *exec.Cmd {
		paths := copies[path]
		if len(paths) == 0 {
			paths = []string{path}
		}
		next := 0
		return func() *exec.Cmd {
			cmd := exec.Command(paths[next%len(paths)], args...)
			next++
			cmd.Env = env
			return cmd
		}
	}
	g := group{name: "CLI"}
	flock, err := exec.LookPath("flock")
	if err == nil {
		g.variants = append(g.variants, variant{name: "flock", command: run(flock, lockFile, "true")})
	} else {
		fmt.Fprintf(w, "# flock(1) not found (%v): its row is left out\n", err)
	}
	g.variants = append(g.variants,
		variant{name: "go-floor", command: run(bins.minexec, "true")},
		variant{name: "go-afero", command: run(bins.minexecAfero, "true")},
		variant{name: "go-signals", command: run(bins.minexecSig, "true")},
		variant{name: "go-forkexec", command: run(bins.minForkExec, "true")},
		variant{name: "go-forkexec-signals", command: run(bins.minForkExec, "-signals", "true")},
		variant{name: "lockdir", command: run(bins.lockdir, "lock", "7", "--", "true")},
	)
	g.ratios = []ratio{
		{num: "lockdir", den: "go-floor"},
		{num: "go-afero", den: "go-floor"},
		{num: "go-signals", den: "go-floor"},
		{num: "lockdir", den: "go-signals"},
		{num: "go-forkexec", den: "go-floor"},
		{num: "go-forkexec-signals", den: "go-floor"},
		{num: "lockdir", den: "go-forkexec-signals"},
	}
	if flock != "" {
		g.ratios = append(g.ratios,
			ratio{num: "lockdir", den: "flock"},
			ratio{num: "go-floor", den: "flock"},
		)
	}
	return g
}

// printSizes prints the binaries' sizes to w, as comment lines.
func printSizes(w io.Writer, bins cliBinaries) error {
	for _, b := range []struct{ name, path string }{
		{"lockdir", bins.lockdir},
		{"go-floor (minexec)", bins.minexec},
		{"go-afero (minexecafero)", bins.minexecAfero},
		{"go-signals (minexecsig)", bins.minexecSig},
		{"go-forkexec, go-forkexec-signals (minforkexec)", bins.minForkExec},
	} {
		fi, err := os.Stat(b.path)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "# size %s: %d bytes (%.1f MB)\n", b.name, fi.Size(), float64(fi.Size())/1e6)
	}
	return nil
}
