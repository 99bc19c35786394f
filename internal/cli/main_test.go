package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/internal/clitest"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary double as the lockdir command, so that
// scripts in testdata run real lockdir processes.
func TestMain(m *testing.M) {
	testscript.Main(m, scriptCommands)
}

// scriptCommands are the programs the test binary doubles as; sigcount and
// the others are added by their files' init functions.
var scriptCommands = map[string]func(){"lockdir": main}

// scriptConditions are the scripts' own conditions, such as [seccomp],
// added by their files' init functions where they mean anything.
var scriptConditions = map[string]func() bool{}

// main is cmd/lockdir's main, which this package cannot import. It sets
// one P first, as cmd/lockdir's import of internal/oneproc does.
func main() {
	runtime.GOMAXPROCS(1)
	os.Exit(Run(os.Args[1:]))
}

// TestScripts runs testdata/*.txtar. Each script gets its own lock
// directory, $WORK/ld, in $LOCKDIR_DIR. [exec:flock] guards the scripts that
// need util-linux flock(1).
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("LOCKDIR_DIR", filepath.Join(e.WorkDir, "ld"))
			// tty.txtar's tmux servers outlive a failed script; end them.
			e.Defer(func() {
				socks, _ := filepath.Glob(filepath.Join(e.WorkDir, "tmux*.sock"))
				for _, s := range socks {
					exec.Command("tmux", "-S", s, "kill-server").Run()
				}
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": clitest.ExitCode,
		},
		Condition: func(cond string) (bool, error) {
			if f, ok := scriptConditions[cond]; ok {
				return f(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// lockdirBinary returns a path named lockdir to the test binary, which
// TestMain runs as the lockdir command, for tests that start lockdir
// processes of their own rather than through a script.
func lockdirBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lockdir")
	if err := os.Symlink(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// newDir creates a lock directory of n locks, ld in a temporary directory,
// and returns its path and a Manager on it, closed when the test ends.
func newDir(t *testing.T, n uint32) (string, *filelock.Manager) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ld")
	m, err := filelock.Create(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return dir, m
}
