package childproc_test

import (
	"testing"
	"time"

	"github.com/lockdir/lockdir/internal/childproc"
)

// countingTB is a testing.TB that counts the clean-ups registered on it,
// and passes them on.
type countingTB struct {
	testing.TB
	n int
}

func (c *countingTB) Cleanup(f func()) {
	c.n++
	c.TB.Cleanup(f)
}

// TestScopeRounds starts a child in each of several rounds on one Scope:
// each is killed and reaped when its round's Close returns, and the test
// gets one clean-up in all, not one a child.
func TestScopeRounds(t *testing.T) {
	ct := &countingTB{TB: t}
	s := childproc.NewScope(ct)
	for round := range 3 {
		c := childproc.Start(s, childproc.Spec{Role: "childproc/talk"})
		c.Expect("ready", 10*time.Second)
		s.Close()
		select {
		case <-c.Exited():
		default:
			t.Errorf("round %d: %v still running after its round's Close", round, c)
		}
	}
	if ct.n != 1 {
		t.Errorf("3 rounds registered %d clean-ups with the test, want 1", ct.n)
	}
}

// TestScopeLeftOpen checks that a child of a Scope that is never closed,
// as when the test stops in the middle of a round, is killed at the end of
// the test all the same.
func TestScopeLeftOpen(t *testing.T) {
	var c *childproc.Child
	t.Run("stops mid-round", func(t *testing.T) {
		s := childproc.NewScope(t)
		c = childproc.Start(s, childproc.Spec{Role: "childproc/talk"})
		c.Expect("ready", 10*time.Second)
	})
	select {
	case <-c.Exited():
	default:
		t.Errorf("%v still running after the end of the test that started it", c)
	}
}
