//go:build unix

package childproc_test

import (
	"testing"
	"time"

	"github.com/lockdir/lockdir/internal/childproc"
)

// TestChildKill checks that Kill ends a child with SIGKILL.
func TestChildKill(t *testing.T) {
	c := childproc.Start(t, childproc.Spec{Role: "childproc/talk"})
	c.Expect("ready", 10*time.Second)
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); !childproc.Killed(err) {
		t.Errorf("Err of a killed child = %v, want SIGKILL", err)
	}
}
