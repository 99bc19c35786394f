//go:build linux

package filelock_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

// TestCleanerDeletesIdleLockFile: a Manager keeps a lock file's
// descriptor between locks (the fd cache). A cleaner that deletes the
// idle file, or replaces it, or removes locks/ altogether, lets the next
// process create a new file and hold it; this Manager's next Lock must
// then lock that file, not the old inode its descriptor still has: one
// holder, not two (recheck.go). Nobody holds the old file when it goes,
// so Unlinked has nothing to report.
func TestCleanerDeletesIdleLockFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		clean func(t *testing.T, dir string)
	}{
		{"deleted", func(t *testing.T, dir string) { rm(t, filepath.Join(dir, "locks", "3")) }},
		{"replaced by rename", func(t *testing.T, dir string) {
			tmp := filepath.Join(dir, "locks", "3.new")
			if err := os.WriteFile(tmp, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, "locks", "3")); err != nil {
				t.Fatal(err)
			}
		}},
		{"locks/ removed", func(t *testing.T, dir string) { rm(t, "-r", filepath.Join(dir, "locks")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := create(t, 16)
			l := mustRetrieve(t, m, 3)
			for range 2 { // twice: the descriptor leaves probation and stays
				l.Lock()
				l.Unlock()
			}
			// Idle for longer than a kept descriptor is trusted.
			time.Sleep(20 * time.Millisecond)
			tc.clean(t, m.Dir())
			if us := unlinked(t, m); len(us) != 0 {
				t.Fatalf("Unlinked after the cleaner: %+v (nothing holds the old file)", us)
			}
			holder := holdInChild(t, m.Dir(), 3)
			if canLock(l) {
				t.Errorf("lock 3 taken through this Manager while another process (pid %d) holds the new file: "+
					"the Manager locked the old inode its kept descriptor had", holder.Pid())
			}
			holder.CloseStdin()
			holder.Wait(childExit)
			if !canLock(l) {
				t.Errorf("lock 3 cannot be taken once the other process let go")
			}
			// And an ID this Manager never opened, after locks/ went.
			l9 := mustRetrieve(t, m, 9)
			if !canLock(l9) {
				t.Errorf("lock 9, never opened before, cannot be taken")
			}
		})
	}
}

func rm(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("rm", args...).CombinedOutput(); err != nil {
		t.Fatalf("rm %v: %v: %s", args, err, out)
	}
}

// TestCleanerDeletesIdleMaster: the same for registry.lock, whose
// descriptor every Manager keeps for its whole life though it locks it only
// around registry access. Once a cleaner deletes registry.lock while no
// process is using the registry, the next Open (any lockdir command)
// creates a new one, and an already open Manager still flocks the deleted
// inode: its registry updates no longer exclude those of processes opened
// since. Here flock(1) on the new registry.lock stands for such a process
// in the middle of an update; an Allocate with a 300 ms timeout must wait
// for it and fail, but goes ahead.
func TestCleanerDeletesIdleMaster(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("no flock(1)")
	}
	m := create(t, 16)
	dir := m.Dir()
	old := open(t, dir, filelock.WithTimeout(300*time.Millisecond))
	mustAllocate(t, old) // the registry was used; nothing holds registry.lock now
	master := filepath.Join(dir, "registry.lock")
	if err := os.Remove(master); err != nil {
		t.Fatal(err)
	}
	open(t, dir) // a later process: it recreates registry.lock
	if _, err := os.Stat(master); err != nil {
		t.Fatalf("Open did not recreate registry.lock: %v", err)
	}
	fl := exec.Command("flock", master, "sleep", "60")
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Process.Kill(); fl.Wait() })
	waitFor(t, "flock(1) to hold registry.lock", func() bool { return heldBy(t, master, fl.Process.Pid) })
	if l, err := old.Allocate(); err == nil {
		t.Errorf("Allocate updated the registry (allocated %d) while another process held the master lock "+
			"registry.lock: the Manager's master descriptor is of the deleted file", l.ID())
	}
}
