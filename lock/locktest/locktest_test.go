package locktest_test

import (
	"testing"

	"github.com/lockdir/lockdir/lock/locktest"
)

func TestMain(m *testing.M) {
	locktest.Main(m, openRef)
}

// TestReference runs the suite on the reference implementation.
func TestReference(t *testing.T) {
	t.Parallel()
	locktest.Run(t, locktest.Harness{New: newRef, Open: openRef})
}
