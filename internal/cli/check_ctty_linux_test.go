package cli

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/internal/childproc"
)

// counterArgs is what TestPlantedCounterChild is given; it replies a
// childproc.Planted.
type counterArgs struct {
	Dir string
	Op  string // free: freeDeadChecks; open: openCounter, as a worker does
}

// plantedCounterName is a counter file's name, as counterPattern makes
// them, for the terminal the child plants.
const plantedCounterName = ".lockdir-tmp.check-tty.counter"

// TestPlantedCounterChild is the child side of TestPlantedCounter: a
// session leader without a controlling terminal, in a mount namespace of
// its own, it plants a pty at a counter file's name in its lock directory,
// makes its call, and says whether it now has a controlling terminal.
func TestPlantedCounterChild(t *testing.T) {
	if childproc.Role("cli") != "counter" {
		t.Skip("child process entry point")
	}
	var a counterArgs
	if err := childproc.Args(&a); err != nil {
		t.Fatal(err)
	}
	childproc.Reply(plantedCounter(a))
}

// plantedCounter is what TestPlantedCounterChild does.
func plantedCounter(a counterArgs) childproc.Planted {
	m, err := filelock.Open(a.Dir)
	if err != nil {
		return childproc.Planted{Before: err.Error()}
	}
	defer m.Close()
	path := filepath.Join(a.Dir, plantedCounterName)
	return childproc.WithPlantedTerminal(path, func() error {
		switch a.Op {
		case "free":
			return freeDeadChecks(m)
		case "open":
			f, err := openCounter(path)
			if err == nil {
				f.Close()
			}
			return err
		}
		return errors.New("unknown op " + a.Op)
	})
}

// TestPlantedCounter checks that a terminal a group member planted at a
// counter file's name in the lock directory does not become the
// controlling terminal of a `lockdir check` that leads a session without
// one (a service, `setsid lockdir check`): neither when check frees what
// killed checks left (freeDeadChecks finds counter files by name) nor when
// a worker opens its check's counter file by the name it was given. Check
// must also go on past the planted file. Each case runs in a child of its
// own, a new session, since a process that acquired a terminal keeps it.
func TestPlantedCounter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount a terminal at a counter file's name")
	}
	for _, op := range []string{"free", "open"} {
		t.Run(op, func(t *testing.T) {
			dir, _ := newDir(t, 8)
			r := childproc.RunPlanted(t, childproc.Spec{
				Role: "cli/counter", Args: counterArgs{Dir: dir, Op: op}, Run: "^TestPlantedCounterChild$", Dir: "/",
			})
			if op == "free" && r.Err != "" {
				t.Errorf("freeDeadChecks stopped at a terminal planted as a counter file: %s", r.Err)
			}
			if r.After != "" {
				t.Errorf("%s on a terminal planted as a counter file: %s", op, r.After)
			}
		})
	}
}
