//go:build linux

package filelock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lockdir/lockdir/internal/childproc"
)

// cttyArgs is what TestPlantedTerminalChild is given; it replies a
// childproc.Planted.
type cttyArgs struct {
	Dir    string
	GID    int    // WithSharedGroup, or -1
	Target string // the name in Dir to plant the terminal at
	Op     string // what to call: open, quick, openlockfile, lock
}

// cttyID is the lock ID whose file the children open.
const cttyID = 3

// TestPlantedTerminalChild is the child side of TestPlantedTerminal: a
// session leader without a controlling terminal, in a mount namespace of
// its own, it plants a pty at its target, makes its call, and says whether
// the call refused the file and whether it now has a controlling terminal.
func TestPlantedTerminalChild(t *testing.T) {
	if childproc.Role("ctty") != "plant" {
		t.Skip("child process entry point")
	}
	var a cttyArgs
	if err := childproc.Args(&a); err != nil {
		t.Fatal(err)
	}
	var opts []Option
	if a.GID >= 0 {
		opts = append(opts, WithSharedGroup(a.GID))
	}
	childproc.Reply(childproc.WithPlantedTerminal(filepath.Join(a.Dir, a.Target), func() error {
		return cttyCall(a.Op, a.Dir, opts)
	}))
}

// cttyCall makes the call op on the lock directory dir, and returns its
// error, or nil if it took every file it opened.
func cttyCall(op, dir string, opts []Option) error {
	if op == "quick" {
		if f, ok := QuickOpenLockFile(dir, cttyID, opts...); ok {
			f.Close()
			return nil
		}
		return errors.New("QuickOpenLockFile declined")
	}
	m, err := Open(dir, opts...)
	if err != nil || op == "open" {
		return err
	}
	defer m.Close()
	switch op {
	case "openlockfile":
		f, err := m.OpenLockFile(cttyID)
		if err == nil {
			f.Close()
		}
		return err
	case "lock":
		l, err := m.Retrieve(cttyID)
		if err != nil {
			return err
		}
		if err := l.LockContext(context.Background()); err != nil {
			return err
		}
		l.Unlock()
		return nil
	}
	return errors.New("unknown op " + op)
}

// TestPlantedTerminal checks that a terminal planted at the name of a lock
// file, registry.lock, the registry or locks/ is refused, as any device
// is (but by a private directory's Lock, which trusts the owner's files:
// docs/design.md, "Planted lock files"), and does not become the
// controlling terminal of the process that opens it. On Linux a session leader without a controlling terminal (a
// daemon, a service, `setsid lockdir ...`) acquires the first tty it opens
// without O_NOCTTY, before fstat can tell the file is no regular file.
// Each case runs in a child of its own, a new session, since a process
// that acquired a terminal keeps it.
//
// Without O_NOCTTY in openAt every case fails but two: locks/, which
// Linux refuses for O_DIRECTORY before it opens the device, and the
// registry under Open, which lstats it first and opens it only if it is a
// regular file (a terminal swapped in between would be opened).
func TestPlantedTerminal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount a terminal at a lock file's name")
	}
	for _, tc := range []struct {
		name   string
		shared bool
		target string
		op     string
		takes  bool // the call takes the file: a private directory's Lock never fstats it
	}{
		{name: "lock file, Lock in a private directory", target: "locks/3", op: "lock", takes: true},
		{name: "lock file, OpenLockFile", target: "locks/3", op: "openlockfile"},
		{name: "lock file, Lock in a shared directory", shared: true, target: "locks/3", op: "lock"},
		{name: "lock file, QuickOpenLockFile", target: "locks/3", op: "quick"},
		{name: "registry.lock, Open", target: masterName, op: "open"},
		{name: "registry.lock, QuickOpenLockFile", target: masterName, op: "quick"},
		{name: "registry, Open", target: registryName, op: "open"},
		{name: "registry, QuickOpenLockFile", target: registryName, op: "quick"},
		{name: "locks/, Open", target: locksName, op: "open"},
		{name: "shared registry.lock, Open", shared: true, target: masterName, op: "open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := cttyArgs{GID: -1, Target: tc.target, Op: tc.op}
			var opts []Option
			if tc.shared {
				a.GID = os.Getgid()
				opts = append(opts, WithSharedGroup(a.GID))
			}
			a.Dir = newLockDir(t, opts...)
			r := childproc.RunPlanted(t, childproc.Spec{
				Role: "ctty/plant", Args: a, Run: "^TestPlantedTerminalChild$", Dir: "/",
			})
			switch {
			case tc.takes && r.Err != "":
				t.Errorf("%s refused a terminal planted at %s, which it takes unchecked: %s", tc.op, tc.target, r.Err)
			case !tc.takes && r.Err == "":
				t.Errorf("%s took a terminal planted at %s", tc.op, tc.target)
			case !tc.takes:
				t.Logf("refused: %s", r.Err)
			}
			if r.After != "" {
				t.Errorf("%s on a terminal planted at %s: %s", tc.op, tc.target, r.After)
			}
		})
	}
}
