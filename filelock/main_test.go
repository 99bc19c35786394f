package filelock_test

import (
	"testing"

	"github.com/lockdir/lockdir/lock/locktest"
)

// TestMain dispatches child processes: this package's own roles
// (runChild), then the conformance suite's (locktest.Main), which otherwise
// runs the tests.
func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	locktest.Main(m, openManager)
}
