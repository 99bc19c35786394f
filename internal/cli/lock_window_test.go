//go:build linux

package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs sh")
	}
	bin, dir := signalInjectionSetup(t)
	for _, tc := range []struct {
		sig    string
		status int
	}{
		{"USR1", 128 + 10},
		{"USR2", 128 + 12},
		{"QUIT", 128 + 3},
	} {
		t.Run(tc.sig, func(t *testing.T) {
			// -P: only LookPath's check of the command's path, not the
			// command's own calls, which strace -f would signal too
			// (each process counts its own first call).
			injectSignal(t, signalInjection{
				path: sh, syscall: "faccessat2", sig: tc.sig, status: tc.status, runs: 5,
				what: "while lockdir looked up the command",
				args: []string{bin, "--dir", dir, "lock", "7", "--", "sh", "-c", "sleep 0.5; touch RAN"},
			})
		})
	}
}

// signalInjectionSetup returns the lockdir binary and a lock directory
// made for it, for injectSignal; it skips the test without strace.
func signalInjectionSetup(t *testing.T) (bin, dir string) {
	t.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("needs strace")
	}
	bin = lockdirBinary(t)
	dir = filepath.Join(t.TempDir(), "ld")
	if out, err := exec.Command(bin, "--dir", dir, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	return bin, dir
}

// signalInjection is a lockdir run under strace that delivers sig when
// lockdir's process makes its first call of syscall on path.
type signalInjection struct {
	path, syscall, sig string
	status             int // lockdir's exit status, 128+N
	runs               int
	what               string   // when the signal comes, for messages
	args               []string // lockdir's command line; RAN in it is a file its command makes
}

// injectSignal makes si's run si.runs times; every run must end with
// si.status, and before the command finished.
func injectSignal(t *testing.T, si signalInjection) {
	t.Helper()
	for i := range si.runs {
		ran := filepath.Join(t.TempDir(), "ran")
		args := []string{"-f", "-qq", "-o", "/dev/null", "-P", si.path,
			"-e", "trace=" + si.syscall, "-e", "inject=" + si.syscall + ":signal=" + si.sig + ":when=1"}
		for _, a := range si.args {
			args = append(args, strings.ReplaceAll(a, "RAN", ran))
		}
		out, err := exec.Command("strace", args...).CombinedOutput()
		status := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		_, serr := os.Stat(ran)
		if serr == nil || status != si.status {
			if len(out) > 300 {
				out = out[:300]
			}
			t.Fatalf("run %d: SIG%s %s: exit %d (want %d), command finished: %v\n%s",
				i, si.sig, si.what, status, si.status, serr == nil, out)
		}
	}
}
