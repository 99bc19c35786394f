//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"os"
	"testing"

	"github.com/lockdir/lockdir/lock/locktest"
)

// TestMain dispatches child processes, this package's own roles (runChild)
// and the conformance suite's (locktest.Setup), then runs the tests and
// removes what the benchmarks cached.
func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	locktest.Setup(openManager)
	code := m.Run()
	removeBenchDirs()
	os.Exit(code)
}
