//go:build linux

package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// lostHeld is a cluster hold that was lost before the command started:
// its Lost channel is already closed, as it is when LockContext returns a
// hold whose lease has just expired.
type lostHeld struct{ lost chan struct{} }

func (h lostHeld) Lost() <-chan struct{}           { return h.lost }
func (h lostHeld) Token() int64                    { return 1 }
func (h lostHeld) Check(ctx context.Context) error { return errors.New("lock lost") }
func (h lostHeld) Unlock()                         {}

// lostUnseenHeld is a hold whose lease ended without its Lost closing
// yet, as for a lockdir stopped past its TTL: Check knows.
type lostUnseenHeld struct{ lostHeld }

// TestLostUnseenIsNotSuccess runs a command that succeeds under a hold
// that the cluster no longer has, while Lost is still open: runChildHeld
// must not report the command's 0, but say so and exit 7 (review 10c: it
// exited 0, silent).
func TestLostUnseenIsNotSuccess(t *testing.T) {
	tru, err := exec.LookPath("true")
	if err != nil {
		t.Skip(err)
	}
	var errBuf strings.Builder
	old := stderr
	stderr = &errBuf
	defer func() { stderr = old }()
	h := lostUnseenHeld{lostHeld{lost: make(chan struct{})}}
	err = runChildHeld(tru, []string{"true"}, make(chan os.Signal, 1), 5, h, nil)
	var es exitStatus
	if !errors.As(err, &es) || int(es) != exitLost {
		t.Fatalf("runChildHeld = %v, want exit status %d", err, exitLost)
	}
	if !strings.Contains(errBuf.String(), "lock 5 not confirmed held") {
		t.Errorf("stderr = %q, want it to say that lock 5 was not confirmed held", errBuf.String())
	}
}

// TestLostBeforeStartRunsNothing gives runChildHeld a hold whose lock was
// lost before the command could start: it must say so and exit 7 without
// starting the command (found by review: it started the command and only
// then sent SIGTERM). SIGTERM is ignored during the call, and so by the
// command, so that a command that was started would run to its end.
func TestLostBeforeStartRunsNothing(t *testing.T) {
	touch, err := exec.LookPath("touch")
	if err != nil {
		t.Skip(err)
	}
	ran := filepath.Join(t.TempDir(), "ran")
	h := lostHeld{lost: make(chan struct{})}
	close(h.lost)
	signal.Ignore(syscall.SIGTERM)
	defer signal.Reset(syscall.SIGTERM)
	sigs := make(chan os.Signal, 1)
	err = runChildHeld(touch, []string{"touch", ran}, sigs, 3, h, nil)
	var st exitStatus
	if !errors.As(err, &st) || int(st) != exitLost {
		t.Errorf("runChildHeld with a lost hold: %v, want exit status %d", err, exitLost)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("the command ran although its lock was lost before it started")
	}
}
