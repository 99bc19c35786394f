//go:build linux

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockKeepsIgnoredSignals is reliability round two's review finding:
// lockdir lock caught every signal it forwards, even one it was started
// with ignored, so 'nohup lockdir lock ID cmd' ended with 129 on a hang-up,
// and a script's 'lockdir lock ID cmd &' with 130 on a Ctrl-C, where
// flock(1) and its command go on. Each row runs lockdir from a shell that
// ignores the signal, sends the signal to lockdir, and checks that the
// command finished and lockdir exited 0, beside flock(1) doing the same.
// SIGQUIT is not among them: the Go runtime keeps an inherited SIG_IGN
// only for SIGHUP and SIGINT (docs/cli.md says so).
func TestLockKeepsIgnoredSignals(t *testing.T) {
	bin := lockdirBinary(t)
	dir := filepath.Join(t.TempDir(), "ld")
	out, err := exec.Command(bin, "--dir", dir, "path", "1").Output()
	if err != nil {
		t.Fatalf("path: %v", err)
	}
	path := strings.TrimSpace(string(out))
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	runners := map[string]string{
		"lockdir": bin + " --dir " + dir + " lock 1",
		"flock":   "flock " + path,
	}
	if _, err := exec.LookPath("flock"); err != nil {
		delete(runners, "flock")
	}
	for _, sig := range []string{"HUP", "INT"} {
		for name, runner := range runners {
			t.Run(name+"/"+sig, func(t *testing.T) {
				// The command sleeps, then says it finished; the
				// shell ignores sig, starts the runner, signals it
				// and reports its status.
				script := `trap '' ` + sig + `
` + runner + ` sh -c 'sleep 1; echo finished' &
p=$!
sleep 0.3
kill -` + sig + ` $p
wait $p
echo "status $?"`
				out, err := exec.Command("sh", "-c", script).CombinedOutput()
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				if got := string(out); !strings.Contains(got, "finished") || !strings.Contains(got, "status 0") {
					t.Errorf("SIG%s ignored by the parent, sent to %s: %q; want the command to finish and status 0", sig, name, got)
				}
			})
		}
	}
}
