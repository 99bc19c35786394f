//go:build unix

package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

// TestCheckKilledFreesItsLock is the loose end of reliability round two:
// a check killed with SIGKILL left the lock ID it allocated for its run
// allocated for ever. Each row stops a check at one of its steps and
// kills it there, with its workers or, where they run, first without them.
// Meanwhile another check must not free the stopped check's ID: it is in
// use. Once every process of the stopped check is gone, the next check
// must free it and leave nothing allocated.
func TestCheckKilledFreesItsLock(t *testing.T) {
	bin := lockdirBinary(t)
	group := groupName(t, os.Getgid())
	for _, tc := range []struct {
		step      string
		allocated bool // whether the check has allocated its ID by then
		workers   bool // whether its workers run on by then
		shared    bool // a directory shared with the process's group
	}{
		{"counter", false, false, false},
		{"recorded", true, false, false},
		{"running", true, true, false},
		{"recorded", true, false, true},
		{"running", true, true, true},
	} {
		name := tc.step
		global := []string{"--dir", ""}
		if tc.shared {
			name += "/shared"
			global = append(global, "--group", group)
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ld")
			global[1] = dir
			var opts []filelock.Option
			if tc.shared {
				opts = append(opts, filelock.WithSharedGroup(os.Getgid()))
			}
			run := func(args ...string) {
				t.Helper()
				out, err := exec.Command(bin, append(global, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("lockdir %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			run("init")
			c := startPausedCheck(t, bin, global, tc.step)
			ids := allocatedIDs(t, dir, opts...)
			if tc.allocated != (len(ids) == 1) {
				t.Fatalf("stopped at %s, allocated %v", tc.step, ids)
			}

			run("check", "--procs", "1", "--seconds", "0.05")
			if got := allocatedIDs(t, dir, opts...); !slices.Equal(got, ids) {
				t.Fatalf("another check ran beside a check stopped at %s: allocated %v, want %v", tc.step, got, ids)
			}
			if tc.workers {
				// The check dies; its workers go on with its lock.
				if err := c.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				run("check", "--procs", "1", "--seconds", "0.05")
				if got := allocatedIDs(t, dir, opts...); !slices.Equal(got, ids) {
					t.Fatalf("a check ran beside the workers of a killed check: allocated %v, want %v", got, ids)
				}
			}
			if err := syscall.Kill(-c.Process.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
				t.Fatal(err)
			}
			c.Wait()
			awaitCounterUnlocked(t, dir)

			run("check", "--procs", "1", "--seconds", "0.05")
			if got := allocatedIDs(t, dir, opts...); len(got) != 0 {
				t.Errorf("after a check killed at %s and the next check: allocated %v, want none", tc.step, got)
			}
		})
	}
}

// startPausedCheck starts a check with the global flags global, in a
// process group of its own with its workers, that stops at step, and
// waits until it says so.
func startPausedCheck(t *testing.T, bin string, global []string, step string) *exec.Cmd {
	t.Helper()
	c := exec.Command(bin, append(global, "check", "--procs", "2", "--seconds", "600")...)
	c.Env = append(os.Environ(), "LOCKDIR_CHECK_PAUSE="+step)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		c.Wait()
	})
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if sc.Text() == "lockdir: check: paused at "+step {
			return c
		}
		t.Logf("check: %s", sc.Text())
	}
	t.Fatalf("check exited before it reached %s", step)
	return nil
}

// groupName is the name of the group gid in /etc/group.
func groupName(t *testing.T, gid int) string {
	t.Helper()
	b, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) >= 3 && f[2] == strconv.Itoa(gid) {
			return f[0]
		}
	}
	t.Fatalf("group %d is not in /etc/group", gid)
	return ""
}

// allocatedIDs lists the IDs allocated in dir, opened with opts.
func allocatedIDs(t *testing.T, dir string, opts ...filelock.Option) []uint32 {
	t.Helper()
	m, err := filelock.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ids, err := m.Allocated()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// awaitCounterUnlocked waits until no process holds a lock on a counter
// file in dir: the processes of a killed check are gone.
func awaitCounterUnlocked(t *testing.T, dir string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, counterPattern))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// TestCheckRemovesStaleCounterFiles: a counter file without a record,
// left by a check killed before it allocated (empty, if killed before it
// gave the file its size), is removed by the next check once it has gone
// a minute unwritten, and kept before: until then it may be a check's that
// has not locked it yet. A locked one is never removed.
func TestCheckRemovesStaleCounterFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int64
		old    bool
		locked bool
		kept   bool
	}{
		{"old", int64(counterSize(2)), true, false, false},
		{"old-empty", 0, true, false, false},
		{"fresh", int64(counterSize(2)), false, false, true},
		{"fresh-empty", 0, false, false, true},
		{"old-locked", int64(counterSize(2)), true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, m := newDir(t, 8)
			name := filepath.Join(dir, strings.Replace(counterPattern, "*", "left", 1))
			if err := os.WriteFile(name, make([]byte, tc.size), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.locked {
				f, err := os.Open(name)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := lockShared(f); err != nil {
					t.Fatal(err)
				}
			}
			if tc.old {
				past := time.Now().Add(-2 * staleCounterAge)
				if err := os.Chtimes(name, past, past); err != nil {
					t.Fatal(err)
				}
			}
			if err := freeDeadChecks(m); err != nil {
				t.Fatal(err)
			}
			_, err := os.Lstat(name)
			if kept := err == nil; kept != tc.kept {
				t.Errorf("counter file kept: %v (%v), want %v", kept, err, tc.kept)
			}
		})
	}
}

// TestCheckIgnoresPlantedCounters: what a member of a shared directory
// may plant at a counter file's name neither stops a check nor is taken
// for a record: a symlink to a file whose record names a user's lock, a
// directory, a FIFO (which must not block the check either).
func TestCheckIgnoresPlantedCounters(t *testing.T) {
	dir, m := newDir(t, 8)
	if _, err := m.AllocateAndRetrieveLock(3); err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(t.TempDir(), "forged")
	f, err := os.Create(forged)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(int64(counterSize(1)))
	if err == nil {
		err = record(f, 3)
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	at := func(what string) string {
		return filepath.Join(dir, strings.Replace(counterPattern, "*", what, 1))
	}
	if err := os.Symlink(forged, at("symlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(at("dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(at("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := freeDeadChecks(m); err != nil {
		t.Errorf("freeDeadChecks beside planted files: %v", err)
	}
	if ids, err := m.Allocated(); err != nil || !slices.Equal(ids, []uint32{3}) {
		t.Errorf("allocated %v, %v; want [3]", ids, err)
	}
	for _, what := range []string{"symlink", "dir", "fifo"} {
		if _, err := os.Lstat(at(what)); err != nil {
			t.Errorf("planted %s: %v; want it left", what, err)
		}
	}
}
