//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filelock_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/lockdir/lockdir/filelock"
)

// TestUnsupported checks that where flock(2) is missing every way to get a
// Manager fails with an error matching errors.ErrUnsupported.
func TestUnsupported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ld")
	if _, err := filelock.Create(dir, 8); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Create: %v, want errors.ErrUnsupported", err)
	}
	if _, err := filelock.Open(dir); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Open: %v, want errors.ErrUnsupported", err)
	}
	if _, err := filelock.OpenOrCreate(dir, 8); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("OpenOrCreate: %v, want errors.ErrUnsupported", err)
	}
}
