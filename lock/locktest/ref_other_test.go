//go:build !unix

package locktest_test

import (
	"errors"
	"testing"

	"github.com/lockdir/lockdir/lock"
)

// newRef skips: the reference implementation needs flock(2).
func newRef(t *testing.T, capacity uint32) (lock.Manager, string) {
	t.Skip("the reference implementation needs flock(2)")
	return nil, ""
}

// openRef fails: the reference implementation needs flock(2).
func openRef(dir string) (lock.Manager, error) {
	return nil, errors.ErrUnsupported
}
