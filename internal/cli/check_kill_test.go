//go:build unix

package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

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
	bin := filepath.Join(t.TempDir(), "lockdir")
	if err := os.Symlink(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		step      string
		allocated bool // whether the check has allocated its ID by then
		workers   bool // whether its workers run on by then
	}{
		{"counter", false, false},
		{"recorded", true, false},
		{"running", true, true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ld")
			run := func(args ...string) {
				t.Helper()
				out, err := exec.Command(bin, append([]string{"--dir", dir}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("lockdir %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			run("init")
			c := startPausedCheck(t, bin, dir, tc.step)
			ids := allocatedIDs(t, dir)
			if tc.allocated != (len(ids) == 1) {
				t.Fatalf("stopped at %s, allocated %v", tc.step, ids)
			}

			run("check", "--procs", "1", "--seconds", "0.05")
			if got := allocatedIDs(t, dir); !slices.Equal(got, ids) {
				t.Fatalf("another check ran beside a check stopped at %s: allocated %v, want %v", tc.step, got, ids)
			}
			if tc.workers {
				// The check dies; its workers go on with its lock.
				if err := c.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				run("check", "--procs", "1", "--seconds", "0.05")
				if got := allocatedIDs(t, dir); !slices.Equal(got, ids) {
					t.Fatalf("a check ran beside the workers of a killed check: allocated %v, want %v", got, ids)
				}
			}
			if err := syscall.Kill(-c.Process.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
				t.Fatal(err)
			}
			c.Wait()
			awaitCounterUnlocked(t, dir)

			run("check", "--procs", "1", "--seconds", "0.05")
			if got := allocatedIDs(t, dir); len(got) != 0 {
				t.Errorf("after a check killed at %s and the next check: allocated %v, want none", tc.step, got)
			}
		})
	}
}

// startPausedCheck starts a check of dir, in a process group of its own
// with its workers, that stops at step, and waits until it says so.
func startPausedCheck(t *testing.T, bin, dir, step string) *exec.Cmd {
	t.Helper()
	c := exec.Command(bin, "--dir", dir, "check", "--procs", "2", "--seconds", "600")
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

// allocatedIDs lists the IDs allocated in dir.
func allocatedIDs(t *testing.T, dir string) []uint32 {
	t.Helper()
	m, err := filelock.Open(dir)
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
