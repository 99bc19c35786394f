//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockdir/lockdir/internal/childproc"
)

// Regression tests for the registry's I/O (issue 7, defects 1 and 2): a
// Manager replaces only its own registry, through the directory descriptor
// it opened. The multi-user ones (defect 2) are in regio_linux_test.go.

// mustState is readDirState, failing the test on an error.
func mustState(t *testing.T, dir string) regState {
	t.Helper()
	s, err := readDirState(dir)
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	return s
}

// createWith creates a lock directory at dir with capacity locks and ids
// allocated, and closes it.
func createWith(t *testing.T, dir string, capacity uint32, ids ...uint32) regState {
	t.Helper()
	m, err := Create(dir, capacity)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, id := range ids {
		if _, err := m.AllocateAndRetrieveLock(id); err != nil {
			t.Fatal(err)
		}
	}
	return mustState(t, dir)
}

// replaceOwn runs Resize and FreeAllLocks on m, whose registry lives at
// own, while another lock directory holding bystander stands at
// elsewhere, and checks that both act on m's own registry only.
func replaceOwn(t *testing.T, m *Manager, own, elsewhere string, bystander regState) {
	t.Helper()
	before := mustState(t, own)
	steps := []struct {
		name string
		do   func() error
		want regState
	}{
		{"Resize(200)", func() error { return m.Resize(200) }, regState{exists: true, capacity: 200, ids: before.ids}},
		{"FreeAllLocks", m.FreeAllLocks, regState{exists: true, capacity: 200}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := mustState(t, own); !got.equal(st.want) {
			t.Errorf("after %s, the Manager's own registry holds %v, want %v", st.name, got, st.want)
		}
		if got := managerState(t, m); !got.equal(st.want) {
			t.Errorf("after %s, the Manager reads %v, want %v", st.name, got, st.want)
		}
		if got := mustState(t, elsewhere); !got.equal(bystander) {
			t.Errorf("after %s, the other directory's registry holds %v, want it untouched: %v", st.name, got, bystander)
		}
	}
}

// TestReplaceAfterChdir opens a lock directory by a relative path, changes
// the working directory to one holding another lock directory of the same
// name, and checks that Resize and FreeAllLocks change the Manager's own
// registry and leave the other alone.
func TestReplaceAfterChdir(t *testing.T) {
	// No t.Parallel: t.Chdir changes the whole process's directory.
	first, second := t.TempDir(), t.TempDir()
	bystander := createWith(t, filepath.Join(second, "locks"), 100, 10, 11, 12)
	t.Chdir(first)
	createWith(t, "locks", 100, 0, 1)
	m, err := Open("locks")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Chdir(second)
	replaceOwn(t, m, filepath.Join(first, "locks"), filepath.Join(second, "locks"), bystander)
}

// TestReplaceAfterMoveAndInit is the operator's repair that docs/format.md
// describes, done while a Manager has the directory open: the directory is
// moved aside and a new one is created at its path. The open Manager's
// Resize and FreeAllLocks must act on its own, moved registry, never on the
// new one, whose master lock they do not hold.
func TestReplaceAfterMoveAndInit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "locks")
	createWith(t, dir, 100, 0, 1)
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	moved := dir + ".old"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	bystander := createWith(t, dir, 100, 10, 11, 12)
	replaceOwn(t, m, moved, dir, bystander)
}

// regioChild describes a child of TestRegIOChild in role, run from exe,
// with arguments given as NAME=value and read back with regioArg.
func regioChild(t *testing.T, exe, role string, args ...string) *exec.Cmd {
	t.Helper()
	named := make(map[string]string, len(args))
	for _, a := range args {
		name, value, _ := strings.Cut(a, "=")
		named[name] = value
	}
	return childproc.Command(t, childproc.Spec{Role: "regio/" + role, Args: named, Exe: exe, Run: "^TestRegIOChild$", Dir: "/"})
}

// regioArg returns the child's argument name, or "" if it has none.
func regioArg(name string) string {
	var named map[string]string
	childproc.Args(&named)
	return named[name]
}

// regioRoles are the child roles, by name; regio_linux_test.go adds some.
var regioRoles = map[string]func(t *testing.T){
	"createkill": childCreateKill,
}

// TestRegIOChild is the child side; it does nothing in a normal run.
func TestRegIOChild(t *testing.T) {
	role := childproc.Role("regio")
	if role == "" {
		t.Skip("child process entry point")
	}
	run, ok := regioRoles[role]
	if !ok {
		t.Fatalf("unknown role %q", role)
	}
	run(t)
}
