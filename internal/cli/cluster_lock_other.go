//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cli

import (
	"errors"
	"runtime"
)

// runClusterLock needs Unix process groups, as runLock does.
func runClusterLock(g *globals, o *lockOptions, id uint32, argv []string) error {
	return errorf(exitFailure, "", "lock: on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
