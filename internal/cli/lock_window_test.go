//go:build linux

package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestLockSignalInStartupWindow checks that a signal lock passes on, sent
// while lockdir looks up the command, is delivered once: it ends lockdir
// with 128+N before the command starts, or, if os/signal hands it to
// lockdir only after the fork (it does so from a goroutine of its own), it
// is passed on to the command and ends that, with the same status. Never
// is it lost. A Go program drops a signal such as SIGUSR1 that nobody has
// Notified, and dumps its goroutines and exits 2 on SIGQUIT, so lock must
// catch its signals before it does anything else. (A review found that
// running signal.Notify in a goroutine beside LookPath and Open, to save
// start-up time, let SIGUSR1 run the command to its end and exit 0.)
//
// strace delivers the signal exactly when LookPath calls faccessat2(2) on
// the command's path. Each signal is tried a few times; any run in which
// the command finishes, or lockdir exits with another status than 128+N,
// fails.
func TestLockSignalInStartupWindow(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("needs strace")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs sh")
	}
	bin := lockdirBinary(t)
	dir := filepath.Join(t.TempDir(), "ld")
	if out, err := exec.Command(bin, "--dir", dir, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		sig    string
		status int
	}{
		{"USR1", 128 + 10},
		{"USR2", 128 + 12},
		{"QUIT", 128 + 3},
	} {
		t.Run(tc.sig, func(t *testing.T) {
			for i := range 5 {
				ran := filepath.Join(t.TempDir(), "ran")
				// -P: only LookPath's check of the command's path, not the
				// command's own calls, which strace -f would signal too
				// (each process counts its own first call).
				cmd := exec.Command(strace, "-f", "-qq", "-o", "/dev/null", "-P", sh,
					"-e", "trace=faccessat2", "-e", "inject=faccessat2:signal="+tc.sig+":when=1",
					bin, "--dir", dir, "lock", "7", "--", "sh", "-c", "sleep 0.5; touch "+ran)
				out, err := cmd.CombinedOutput()
				status := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					status = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				_, serr := os.Stat(ran)
				if serr == nil || status != tc.status {
					if len(out) > 300 {
						out = out[:300]
					}
					t.Fatalf("run %d: SIG%s while lockdir looked up the command: exit %d (want %d), command finished: %v\n%s",
						i, tc.sig, status, tc.status, serr == nil, out)
				}
			}
		})
	}
}
