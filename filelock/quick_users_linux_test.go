//go:build linux

package filelock

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lockdir/lockdir/internal/childproc"
)

// quickArgs and quickResult are what TestQuickChild is given and returns.
type quickArgs struct {
	Dir string
	GID int // WithSharedGroup, or -1
	ID  uint32
}

type quickResult struct {
	OpenErr string `json:",omitempty"` // Open's error, "" if it took the directory
	QuickOK bool   `json:",omitempty"` // QuickOpenLockFile took the directory
}

// TestQuickChild is the child side of TestQuickOpenLockFileUnwritable: it
// tries Open, then QuickOpenLockFile, as the user it runs as.
func TestQuickChild(t *testing.T) {
	if childproc.Role("quick") != "try" {
		t.Skip("child process entry point")
	}
	var a quickArgs
	if err := childproc.Args(&a); err != nil {
		t.Fatal(err)
	}
	var opts []Option
	if a.GID >= 0 {
		opts = append(opts, WithSharedGroup(a.GID))
	}
	var r quickResult
	if m, err := Open(a.Dir, opts...); err != nil {
		r.OpenErr = err.Error()
	} else {
		m.Close()
	}
	if f, ok := QuickOpenLockFile(a.Dir, a.ID, opts...); ok {
		f.Close()
		r.QuickOK = true
	}
	childproc.Reply(r)
}

// TestQuickOpenLockFileUnwritable checks, with real users, that a
// directory Open refuses because this user may not write its registry or
// registry.lock (Open opens both read-write) is left to the long way,
// untouched. The short way opens the registry read-only and registry.lock
// not at all, so it takes the directory and creates the lock file (review
// of issue 12). Both modes: a private directory of a user's own whose
// registry is 0400, and a shared one whose registry a member's group may
// not write.
func TestQuickOpenLockFileUnwritable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make throwaway users")
	}
	_, member, gid, exe, base := members(t)
	owner := newUser(t)
	ownerBase := publicDir(t) // base is the group's alone
	for _, tc := range []struct {
		name string
		gid  int
		cred *syscall.Credential
		file string
		mode os.FileMode
	}{
		{name: "private registry 0400", gid: -1, cred: owner.cred(), file: registryName, mode: 0o400},
		{name: "private registry.lock 0400", gid: -1, cred: owner.cred(), file: masterName, mode: 0o400},
		{name: "shared registry 0640", gid: gid, cred: member, file: registryName, mode: 0o640},
		{name: "shared registry.lock 0640", gid: gid, cred: member, file: masterName, mode: 0o640},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := base
			if tc.gid < 0 {
				b = ownerBase
			}
			parent, err := os.MkdirTemp(b, "q")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(parent) })
			chmod(t, parent, 0o755)
			dir := filepath.Join(parent, "ld")
			var opts []Option
			if tc.gid >= 0 {
				opts = append(opts, WithSharedGroup(tc.gid))
			}
			m, err := Create(dir, 8, opts...)
			if err != nil {
				t.Fatal(err)
			}
			m.Close()
			if tc.gid < 0 {
				// The owner's own private directory.
				if out, err := exec.Command("chown", "-R", owner.name+":", dir).CombinedOutput(); err != nil {
					t.Fatalf("chown: %v: %s", err, out)
				}
			}
			chmod(t, filepath.Join(dir, tc.file), tc.mode)
			before := snapshot(t, dir)

			cmd := childproc.Command(t, childproc.Spec{
				Role: "quick/try", Args: quickArgs{Dir: dir, GID: tc.gid, ID: 3}, Exe: exe,
				Run: "^TestQuickChild$", Dir: "/", SysProcAttr: &syscall.SysProcAttr{Credential: tc.cred},
			})
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v\n%s\n%s", err, out, stderr.Bytes())
			}
			var r quickResult
			if err := childproc.Result(out, &r); err != nil {
				t.Fatalf("child printed no result: %s\n%s", out, stderr.Bytes())
			}
			if want := tc.file + ": permission denied"; !strings.HasSuffix(r.OpenErr, want) {
				t.Fatalf("Open: %q, want an error ending %q: the case is not the one meant", r.OpenErr, want)
			}
			t.Logf("Open: %s", r.OpenErr)
			if r.QuickOK {
				t.Errorf("QuickOpenLockFile took a directory Open refuses")
			}
			checkSnapshot(t, "QuickOpenLockFile", dir, before)
		})
	}
}
