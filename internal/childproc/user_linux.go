package childproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A User is a throwaway user made by NewUser, to run children as.
type User struct {
	Name     string
	UID, GID int // GID is the user's own group
}

// Cred returns the credentials that run a child as u, for
// Spec.SysProcAttr.
func (u User) Cred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}
}

// NewUser creates a throwaway user with a group of its own, removed at the
// end of the test. It skips the test unless it runs as root with useradd.
// The user is looked up with getent rather than os/user, whose cgo this
// module's binaries avoid.
func NewUser(t testing.TB) User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a throwaway user (useradd)")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("needs useradd to create a throwaway user")
	}
	name := fmt.Sprintf("ldt%d%d", os.Getpid()%100000, time.Now().UnixNano()%1000)
	if out, err := exec.Command("useradd", "-M", "-U", "-s", "/usr/sbin/nologin", "-d", "/nonexistent", name).CombinedOutput(); err != nil {
		t.Skipf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	out, err := exec.Command("getent", "passwd", name).Output()
	if err != nil {
		t.Fatalf("getent passwd %s: %v", name, err)
	}
	// name:password:uid:gid:...
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	if len(f) < 4 {
		t.Fatalf("getent passwd %s: %q", name, out)
	}
	u := User{Name: name}
	if u.UID, err = strconv.Atoi(f[2]); err == nil {
		u.GID, err = strconv.Atoi(f[3])
	}
	if err != nil {
		t.Fatalf("getent passwd %s: %q: %v", name, out, err)
	}
	return u
}

// PublicDir makes a directory, removed at the end of the test, that every
// user can reach: t.TempDir's parent may be closed to them.
func PublicDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "lockdir-child-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// PublicBinary copies the running test binary into dir as name, for a
// Spec.Exe that another user can run.
func PublicBinary(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, name)
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}
