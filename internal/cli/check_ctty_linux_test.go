package cli

import (
	"bytes"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/internal/childproc"
)

// counterArgs and counterResult are what TestPlantedCounterChild is given
// and returns.
type counterArgs struct {
	Dir string
	Op  string // free: freeDeadChecks; open: openCounter, as a worker does
}

type counterResult struct {
	Skip   string `json:",omitempty"` // why no terminal could be planted
	Before string `json:",omitempty"` // a controlling terminal before the call
	Err    string `json:",omitempty"` // the call's error
	After  string `json:",omitempty"` // a controlling terminal after the call
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
	// A terminal the child acquired hangs up when its master closes,
	// which sends the child SIGHUP: it must still report.
	signal.Ignore(syscall.SIGHUP)
	childproc.Reply(plantedCounter(a))
}

// plantedCounter is what TestPlantedCounterChild does.
func plantedCounter(a counterArgs) counterResult {
	var r counterResult
	if err := childproc.ControllingTerminal(nil); err != nil {
		r.Before = err.Error()
		return r
	}
	m, err := filelock.Open(a.Dir)
	if err != nil {
		r.Before = err.Error()
		return r
	}
	defer m.Close()
	path := filepath.Join(a.Dir, plantedCounterName)
	master, err := childproc.PlantTerminal(path)
	if errors.Is(err, childproc.ErrNoTerminal) {
		r.Skip = err.Error()
		return r
	} else if err != nil {
		r.Before = "planting: " + err.Error()
		return r
	}
	defer master.Close()
	switch a.Op {
	case "free":
		err = freeDeadChecks(m)
	case "open":
		var f *os.File
		if f, err = openCounter(path); err == nil {
			f.Close()
		}
	default:
		err = errors.New("unknown op " + a.Op)
	}
	if err != nil {
		r.Err = err.Error()
	}
	if err := childproc.ControllingTerminal(master); err != nil {
		r.After = err.Error()
	}
	return r
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
			dir := filepath.Join(t.TempDir(), "ld")
			m, err := filelock.Create(dir, 8)
			if err != nil {
				t.Fatal(err)
			}
			m.Close()
			r := runCounterChild(t, counterArgs{Dir: dir, Op: op})
			if r.Skip != "" {
				t.Skip(r.Skip)
			}
			if r.Before != "" {
				t.Fatalf("the child is not a session leader without a controlling terminal: %s", r.Before)
			}
			if op == "free" && r.Err != "" {
				t.Errorf("freeDeadChecks stopped at a terminal planted as a counter file: %s", r.Err)
			}
			if r.After != "" {
				t.Errorf("%s on a terminal planted as a counter file: %s", op, r.After)
			}
		})
	}
}

// runCounterChild runs TestPlantedCounterChild with a and decodes its
// result; it skips the test where the child's mount namespace may not be
// made.
func runCounterChild(t *testing.T, a counterArgs) counterResult {
	t.Helper()
	cmd := childproc.Command(t, childproc.Spec{
		Role: "cli/counter", Args: a, Run: "^TestPlantedCounterChild$", Dir: "/",
		SysProcAttr: childproc.NewSession(),
	})
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(err, syscall.EPERM) && cmd.Process == nil {
		t.Skipf("starting a child in a mount namespace of its own: %v", err)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	var r counterResult
	if err := childproc.Result(out, &r); err != nil {
		t.Fatalf("child printed no result: %s\n%s", out, stderr.Bytes())
	}
	return r
}
