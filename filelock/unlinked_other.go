//go:build !linux

package filelock

import (
	"errors"
	"fmt"
	"runtime"
)

// unlinkedLocks needs the kernel's lock table and each process's open
// files, which only Linux publishes (/proc/locks, /proc/PID/fd).
func (m *Manager) unlinkedLocks() ([]Unlinked, error) {
	return nil, fmt.Errorf("find deleted lock files in use on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
