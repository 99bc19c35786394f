//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lockdir/lockdir/filelock"
)

// The child side: a child process is this binary with roleEnv naming its
// role, dirEnv its directory and nEnv its number of IDs.
const (
	roleEnv = "PROCBENCH_ROLE"
	dirEnv  = "PROCBENCH_DIR"
	nEnv    = "PROCBENCH_N"
)

// runRole runs the child role and returns the exit status. The child
// prints its own timing of the work (inprocKey) and how many IDs it did.
func runRole(role string) int {
	dir := os.Getenv(dirEnv)
	n, err := strconv.Atoi(os.Getenv(nEnv))
	if err != nil && role != "noop" {
		fmt.Fprintf(os.Stderr, "procbench %s: %s: %v\n", role, nEnv, err)
		return 2
	}
	stopProfiles, err := startProfiles()
	if err != nil {
		fmt.Fprintf(os.Stderr, "procbench %s: %v\n", role, err)
		return 2
	}
	start := time.Now()
	done := 0
	switch role {
	case "noop":
		// Start up and exit: the floor of every other role.
		return 0
	case "touch-lockdir":
		done, err = touchLockdir(dir, n)
	case "touch-lockdir-max40":
		done, err = touchLockdir(dir, n, filelock.WithMaxOpenFiles(40))
	case "touch-lockdir-pregrow":
		if err = pregrow(2047); err == nil {
			done, err = touchLockdir(dir, n)
		}
	case "create-lockdir":
		done, err = createLockdir(dir, n)
	case "touch-files":
		done, err = touchFiles(dir, n, 0)
	case "touch-files-keep":
		done, err = touchFilesKeep(dir, n)
	case "create-files":
		done, err = touchFiles(dir, n, unix.O_CREAT)
	default:
		err = fmt.Errorf("unknown role")
	}
	elapsed := time.Since(start)
	err = errors.Join(err, stopProfiles())
	printSchedstat(os.Stderr, elapsed)
	if err != nil {
		fmt.Fprintf(os.Stderr, "procbench %s: %v\n", role, err)
		return 2
	}
	fmt.Printf("%s %d\nids %d\n", inprocKey, elapsed.Nanoseconds(), done)
	return 0
}

// touchLockdir is a short-lived process of a container engine (ps,
// inspect): it opens the lock directory and, for IDs 0 to n-1, retrieves,
// locks and unlocks each lock once. It exits without closing the Manager,
// as such a process may: exit closes the descriptors.
func touchLockdir(dir string, n int, opts ...filelock.Option) (int, error) {
	m, err := filelock.Open(dir, opts...)
	if err != nil {
		return 0, err
	}
	for id := range uint32(n) {
		l, err := m.RetrieveLock(id)
		if err != nil {
			return int(id), err
		}
		l.Lock()
		l.Unlock()
	}
	return n, nil
}

// createLockdir allocates n locks and locks and unlocks each once, which
// creates its lock file: the creating path.
func createLockdir(dir string, n int) (int, error) {
	m, err := filelock.Open(dir)
	if err != nil {
		return 0, err
	}
	for i := range n {
		l, err := m.AllocateLock()
		if err != nil {
			return i, err
		}
		l.Lock()
		l.Unlock()
	}
	return n, nil
}

// touchFiles is the baseline, a file-per-lock backend: for each of the files
// 0 to n-1 in dir it makes open (creating the file if flags has O_CREAT),
// flock(LOCK_EX), flock(LOCK_UN) and close, building the path from the ID
// as such a backend does.
func touchFiles(dir string, n int, flags int) (int, error) {
	for id := range n {
		path := dir + "/" + strconv.Itoa(id)
		fd, err := touchFile(path, flags)
		if err != nil {
			return id, err
		}
		if err := unix.Close(fd); err != nil {
			return id, &os.PathError{Op: "close", Path: path, Err: err}
		}
	}
	return n, nil
}

// touchFilesKeep is touchFiles without the close: every descriptor stays
// open until exit. It is a diagnostic variant (procbench cold -extra), which
// shows what holding many descriptors costs by itself: the kernel grows the
// descriptor table in powers of two, and in a multithreaded process each
// growth waits for an RCU grace period.
func touchFilesKeep(dir string, n int) (int, error) {
	for id := range n {
		if _, err := touchFile(dir+"/"+strconv.Itoa(id), 0); err != nil {
			return id, err
		}
	}
	return n, nil
}

// touchFile opens path as touchFiles does, locks and unlocks it, and
// returns its descriptor.
func touchFile(path string, flags int) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|flags, 0o600)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return -1, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
		return -1, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return fd, nil
}

// pregrow grows the process's descriptor table to hold descriptor fd in
// one step, by duplicating stdin to fd and closing it, so that the kernel
// waits for one RCU grace period instead of one per doubling. It is a
// diagnostic (procbench cold -extra): what growing the table once, up
// front, would save.
func pregrow(fd int) error {
	if err := unix.Dup3(0, fd, unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("dup3 to %d: %w", fd, err)
	}
	return unix.Close(fd)
}

// coldConfig configures the cold benchmarks.
type coldConfig struct {
	dir    string // parent of the benchmark's directories
	sizes  []int  // numbers of IDs
	rounds int
	self   string // the child binary; default os.Executable
	// extra adds ColdTouch's diagnostic variants: lockdir-max40, lockdir
	// keeping at most 40 idle descriptors (WithMaxOpenFiles(40)), so that
	// the process never holds more than 64, the kernel's first descriptor
	// table; lockdir-pregrow, lockdir after growing the descriptor table
	// to 2,048 in one step (pregrow); and baseline-keep, the baseline
	// without its close.
	extra bool
	fifo  bool // run the children with SCHED_FIFO (see realtime)
}

// child returns a command that runs this binary in role.
func (c *coldConfig) child(role, dir string, n int) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command(c.self)
		cmd.Env = append(os.Environ(), roleEnv+"="+role, dirEnv+"="+dir, nEnv+"="+strconv.Itoa(n))
		return cmd
	}
}

// checkIDs checks that the child reported doing all n IDs.
func checkIDs(n int) func(string) error {
	return func(out string) error {
		for line := range strings.Lines(out) {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "ids" {
				if f[1] == strconv.Itoa(n) {
					return nil
				}
				return fmt.Errorf("child did %s IDs, want %d", f[1], n)
			}
		}
		return fmt.Errorf("child did not say how many IDs it did: %q", out)
	}
}

// runCold sets up, for each size n, a lock directory of capacity 2n in
// which IDs 0 to n-1 are allocated and their lock files exist, and a
// directory of n plain files; measures ColdTouch and ColdCreate; and
// prints the samples and a summary to w.
func runCold(w io.Writer, c coldConfig) error {
	if c.self == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		c.self = self
	}
	root, err := os.MkdirTemp(c.dir, "procbench-cold-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	var groups []group
	perID := map[string]int{}
	for _, n := range c.sizes {
		fmt.Fprintf(os.Stderr, "procbench: setting up %d IDs\n", n)
		base := filepath.Join(root, strconv.Itoa(n))
		touch, err := c.touchGroup(filepath.Join(base, "lockdir"), filepath.Join(base, "files"), n)
		if err != nil {
			return err
		}
		create := c.createGroup(filepath.Join(base, "lockdir-new"), filepath.Join(base, "files-new"), n)
		groups = append(groups, touch, create)
		perID[touch.name], perID[create.name] = n, n
	}
	header := fmt.Sprintf("# procbench cold: %d rounds, directories under %s, GOMAXPROCS unset, %d CPUs, SCHED_FIFO %v", c.rounds, c.dir, numCPU(), c.fifo)
	return benchmark(w, header, groups, c.rounds, c.fifo, perID)
}

// touchGroup sets up ColdTouch of n IDs in ld and files (see setupTouch)
// and returns its variants: lockdir, its baseline and the noop floor, and
// with c.extra the diagnostic variants.
func (c *coldConfig) touchGroup(ld, files string, n int) (group, error) {
	if err := setupTouch(ld, files, n); err != nil {
		return group{}, err
	}
	touch := group{
		name: fmt.Sprintf("ColdTouch/N=%d", n),
		variants: []variant{
			{name: "baseline", command: c.child("touch-files", files, n), after: checkIDs(n)},
			{name: "lockdir", command: c.child("touch-lockdir", ld, n), after: checkIDs(n)},
			{name: "noop", command: c.child("noop", "", 0)},
		},
		ratios: []ratio{{num: "lockdir", den: "baseline"}, {num: "lockdir", den: "baseline", net: "noop"}},
	}
	if c.extra {
		touch.variants = append(touch.variants,
			variant{name: "lockdir-max40", command: c.child("touch-lockdir-max40", ld, n), after: checkIDs(n)},
			variant{name: "lockdir-pregrow", command: c.child("touch-lockdir-pregrow", ld, n), after: checkIDs(n)},
			variant{name: "baseline-keep", command: c.child("touch-files-keep", files, n), after: checkIDs(n)},
		)
		touch.ratios = append(touch.ratios,
			ratio{num: "lockdir-max40", den: "baseline"},
			ratio{num: "lockdir-pregrow", den: "baseline"},
			ratio{num: "baseline-keep", den: "baseline"})
	}
	return touch, nil
}

// createGroup returns ColdCreate's variants for n IDs: lockdir in a new
// lock directory ldNew, its baseline in a new directory filesNew, each made
// before and removed after every sample, and the noop floor.
func (c *coldConfig) createGroup(ldNew, filesNew string, n int) group {
	return group{
		name: fmt.Sprintf("ColdCreate/N=%d", n),
		variants: []variant{
			{
				name:    "baseline",
				command: c.child("create-files", filesNew, n),
				before:  func() error { return os.Mkdir(filesNew, 0o700) },
				after: func(out string) error {
					return checkAll(checkIDs(n)(out), checkFiles(filesNew, n), os.RemoveAll(filesNew))
				},
			},
			{
				name:    "lockdir",
				command: c.child("create-lockdir", ldNew, n),
				before: func() error {
					m, err := filelock.Create(ldNew, uint32(2*n))
					if err != nil {
						return err
					}
					return m.Close()
				},
				after: func(out string) error {
					return checkAll(checkIDs(n)(out), checkAllocated(ldNew, n), checkFiles(filepath.Join(ldNew, "locks"), n), os.RemoveAll(ldNew))
				},
			},
			{name: "noop", command: c.child("noop", "", 0)},
		},
		ratios: []ratio{{num: "lockdir", den: "baseline"}, {num: "lockdir", den: "baseline", net: "noop"}},
	}
}

// setupTouch makes ColdTouch's directories: ld, a lock directory of
// capacity 2n with IDs 0 to n-1 allocated and their lock files created, and
// files, holding n plain files 0 to n-1.
func setupTouch(ld, files string, n int) error {
	m, err := filelock.Create(ld, uint32(2*n))
	if err != nil {
		return err
	}
	for range n {
		l, err := m.AllocateLock()
		if err != nil {
			m.Close()
			return err
		}
		l.Lock()
		l.Unlock()
	}
	if err := m.Close(); err != nil {
		return err
	}
	if err := checkAll(checkAllocated(ld, n), checkFiles(filepath.Join(ld, "locks"), n)); err != nil {
		return err
	}
	if err := os.Mkdir(files, 0o700); err != nil {
		return err
	}
	_, err = touchFiles(files, n, unix.O_CREAT)
	return err
}

// runSetup makes ColdTouch's directories for n IDs under dir, which must not
// exist, and prints how to run its children by hand.
func runSetup(w io.Writer, dir string, n int) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	ld, files := filepath.Join(dir, "lockdir"), filepath.Join(dir, "files")
	if err := setupTouch(ld, files, n); err != nil {
		return err
	}
	for _, c := range []struct{ role, dir string }{
		{"touch-lockdir", ld}, {"touch-lockdir-max40", ld}, {"touch-lockdir-pregrow", ld},
		{"touch-files", files}, {"touch-files-keep", files}, {"noop", ""},
	} {
		fmt.Fprintf(w, "%s=%s %s=%s %s=%d\n", roleEnv, c.role, dirEnv, c.dir, nEnv, n)
	}
	return nil
}

func checkAll(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkAllocated checks that exactly IDs 0 to n-1 of the lock directory
// dir are allocated.
func checkAllocated(dir string, n int) error {
	m, err := filelock.Open(dir)
	if err != nil {
		return err
	}
	defer m.Close()
	ids, err := m.Allocated()
	if err != nil {
		return err
	}
	if len(ids) != n || (n > 0 && ids[n-1] != uint32(n-1)) {
		return fmt.Errorf("%s: %d IDs allocated, want 0 to %d", dir, len(ids), n-1)
	}
	return nil
}

// checkFiles checks that dir holds exactly the files 0 to n-1.
func checkFiles(dir string, n int) error {
	names, err := readNames(dir)
	if err != nil {
		return err
	}
	if len(names) != n {
		return fmt.Errorf("%s holds %d files, want %d", dir, len(names), n)
	}
	for _, name := range names {
		if id, err := strconv.Atoi(name); err != nil || id < 0 || id >= n {
			return fmt.Errorf("%s holds %q, want only 0 to %d", dir, name, n-1)
		}
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func numCPU() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	return set.Count()
}
