//go:build linux

package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCheckOnFullFilesystemFreesItsLock runs check in a directory whose
// file system is full, so that recording the check's lock ID in its
// counter file fails (review 10b). Erasing the record failed the same way,
// and check then skipped freeing the ID; the counter file went, so no
// later check could free it either: the ID stayed allocated for good.
func TestCheckOnFullFilesystemFreesItsLock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a small tmpfs: needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	bin := lockdirBinary(t)
	dir := filepath.Join(mnt, "d")
	if out, err := exec.Command(bin, "--dir", dir, "init", "--num-locks", "4").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	// Fill the file system: the write fails with ENOSPC once it is full.
	f, err := os.Create(filepath.Join(mnt, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	out, err := exec.Command(bin, "--dir", dir, "check", "--procs", "2", "--seconds", "0.2").CombinedOutput()
	if err == nil {
		t.Fatalf("check on a full file system succeeded:\n%s", out)
	}
	st, err := exec.Command(bin, "--dir", dir, "status", "--json").Output()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var s struct {
		Allocated int `json:"allocated"`
	}
	if err := json.Unmarshal(st, &s); err != nil {
		t.Fatalf("status --json: %v\n%s", err, st)
	}
	if s.Allocated != 0 {
		t.Errorf("after a check that failed on a full file system, %d lock(s) stay allocated; check said:\n%s", s.Allocated, out)
	}
}
