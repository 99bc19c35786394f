//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"path/filepath"
	"testing"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
	"github.com/lockdir/lockdir/lock/locktest"
)

// openManager opens dir as a lock.Manager, returning a nil interface (not a
// typed nil) on error.
func openManager(dir string) (lock.Manager, error) {
	m, err := filelock.Open(dir)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// TestConformance runs the lock.Manager conformance suite, child processes
// included, against filelock.
func TestConformance(t *testing.T) {
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T, capacity uint32) (lock.Manager, string) {
			dir := filepath.Join(t.TempDir(), "locks")
			m, err := filelock.Create(dir, capacity)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := m.Close(); err != nil {
					t.Error(err)
				}
			})
			return m, dir
		},
		Open: openManager,
	})
}
