//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cli

import (
	"errors"
	"runtime"
)

// runLock needs flock(2) and Unix process groups; elsewhere lock fails as
// the filelock library does.
func runLock(g *globals, o *lockOptions, id uint32, argv []string) error {
	return errorf(exitFailure, "", "lock: flock(2) on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
