//go:build linux

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/lockdir/lockdir/internal/childproc"
)

// TestDefaultDirRealUser runs lockdir as a throwaway non-root user with
// neither HOME nor XDG_RUNTIME_DIR nor LOCKDIR_DIR, as cron or su leave
// it: it uses lockdir-UID in the temporary directory, made 0700, and
// refuses one that another user planted there, or a symbolic link.
func TestDefaultDirRealUser(t *testing.T) {
	u := childproc.NewUser(t)

	// A directory the user can reach, holding the lockdir binary (this
	// test binary, which runs main under that name) and a sticky, world-
	// writable temporary directory like /tmp.
	base := childproc.PublicDir(t)
	exe := childproc.PublicBinary(t, base, "lockdir")
	tmp := filepath.Join(base, "tmp")
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tmp, 0o777|os.ModeSticky)
	want := filepath.Join(tmp, "lockdir-"+strconv.Itoa(u.UID))

	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(exe, args...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp}
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Cred()}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("lockdir %v: %v", args, err)
		}
		return string(out), 0
	}

	for _, tc := range []struct {
		name    string
		plant   func(t *testing.T) // what is at want beforehand
		code    int
		message string
	}{
		{"fresh", func(t *testing.T) {}, 0, ""},
		{"planted by another user", func(t *testing.T) {
			if err := os.Mkdir(want, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(want, 0o777)
		}, exitDir, "is owned by uid 0, not by you"},
		{"symbolic link", func(t *testing.T) {
			target := filepath.Join(base, "elsewhere")
			os.Mkdir(target, 0o700)
			os.Chown(target, u.UID, u.GID)
			if err := os.Symlink(target, want); err != nil {
				t.Fatal(err)
			}
		}, exitDir, "it is a symbolic link"},
		{"open to others", func(t *testing.T) {
			if err := os.Mkdir(want, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(want, 0o777)
			os.Chown(want, u.UID, u.GID)
		}, exitDir, "its mode is 0777, not 0700"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(want)
			tc.plant(t)
			out, code := run("lock", "3", "true")
			if code != tc.code || !strings.Contains(out, tc.message) {
				t.Fatalf("lockdir lock 3 true: exit %d, %q; want exit %d and %q", code, out, tc.code, tc.message)
			}
			if tc.code != 0 {
				if !strings.Contains(out, "set LOCKDIR_DIR or XDG_RUNTIME_DIR") {
					t.Errorf("no advice in %q", out)
				}
				return
			}
			fi, err := os.Lstat(want)
			if err != nil {
				t.Fatal(err)
			}
			if owner, _ := fileOwner(fi); !fi.IsDir() || fi.Mode().Perm() != 0o700 || owner != u.UID {
				t.Errorf("%s: mode %v, owner %d; want a directory, 0700, owned by %d", want, fi.Mode(), owner, u.UID)
			}
			out, code = run("status")
			if code != 0 || !strings.Contains(out, "directory:  "+want+"\n") {
				t.Errorf("lockdir status: exit %d, %q; want a directory: line naming %s", code, out, want)
			}
		})
	}
}
