//go:build linux

package filelock_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

// realPath resolves symlinks in path, as the kernel names files in
// /proc/PID/fd.
func realPath(t *testing.T, path string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, filepath.Base(path))
}

func unlinked(t *testing.T, m *filelock.Manager) []filelock.Unlinked {
	t.Helper()
	us, err := m.Unlinked()
	if err != nil {
		t.Fatal(err)
	}
	return us
}

// TestUnlinkedInUse deletes, from another process, a lock file that a
// child holds and registry.lock while flock(1) holds it, as a cleaner
// would. Unlinked must name both, with their holders; before, nothing
// could tell, and the next Lock made a second holder.
func TestUnlinkedInUse(t *testing.T) {
	m := create(t, 16)
	dir := m.Dir()
	holder := holdInChild(t, dir, 3)
	if us := unlinked(t, m); len(us) != 0 {
		t.Fatalf("Unlinked before any deletion: %+v", us)
	}
	if out, err := exec.Command("rm", m.LockPath(3)).CombinedOutput(); err != nil {
		t.Fatalf("rm: %v: %s", err, out)
	}
	want := []filelock.Unlinked{{Path: realPath(t, m.LockPath(3)), PID: holder.Pid(), Exclusive: true}}
	if us := unlinked(t, m); !slices.Equal(us, want) {
		t.Errorf("lock file 3 deleted while held: Unlinked = %+v, want %+v", us, want)
	}
	// This is why it matters: the lock no longer excludes.
	if !heldElsewhere(t, dir, 3) {
		t.Log("as expected, lock 3 can be taken a second time once its file is deleted")
	}

	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("no flock(1) to hold registry.lock")
	}
	master := filepath.Join(dir, "registry.lock")
	fl := exec.Command("flock", master, "sleep", "60")
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Process.Kill(); fl.Wait() })
	waitFor(t, "flock(1) to hold registry.lock", func() bool {
		return heldBy(t, master, fl.Process.Pid)
	})
	if err := os.Remove(master); err != nil {
		t.Fatal(err)
	}
	want = append([]filelock.Unlinked{{Path: realPath(t, master), PID: fl.Process.Pid, Exclusive: true}}, want...)
	slices.SortFunc(want, func(a, b filelock.Unlinked) int { return strings.Compare(a.Path, b.Path) })
	if us := unlinked(t, m); !slices.Equal(us, want) {
		t.Errorf("registry.lock deleted while held too: Unlinked = %+v, want %+v", us, want)
	}
}

// heldBy reports whether /proc/locks shows pid holding a lock on path.
func heldBy(t *testing.T, path string, pid int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Skip(err)
	}
	ino := strconv.FormatUint(inode(t, path), 10)
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[4] == strconv.Itoa(pid) && strings.HasSuffix(f[5], ":"+ino) {
			return true
		}
	}
	return false
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
