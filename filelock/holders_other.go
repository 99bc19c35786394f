//go:build !linux

package filelock

import (
	"errors"
	"fmt"
	"runtime"
)

// heldLocks needs the kernel's lock table, which only Linux publishes
// (/proc/locks) in a form that names files.
func (m *Manager) heldLocks(capacity uint32) ([]Holder, error) {
	return nil, fmt.Errorf("list lock holders on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func (m *Manager) waitingLocks(capacity uint32) ([]Holder, error) {
	return nil, fmt.Errorf("list lock waiters on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func (m *Manager) lockTable(limit uint32) (holders, waiters []Holder, err error) {
	return nil, nil, fmt.Errorf("list lock holders and waiters on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
