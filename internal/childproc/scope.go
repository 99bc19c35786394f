package childproc

import (
	"sync"
	"testing"
)

// A Scope is a testing.TB for the children of one round of a test's
// loop: the clean-ups registered on it, Start's among them, run when the
// round ends with Close, not at the end of the test, so that they do not
// pile up over the rounds. Any the test leaves when it stops in the middle
// of a round still run at its end, so a failing test still kills its
// children. Everything else goes to the test it wraps; like the test's,
// its methods are called from the test's goroutine.
type Scope struct {
	testing.TB
	mu  sync.Mutex
	fns []func()
}

// NewScope returns a Scope around t, with no clean-ups yet. One Scope
// serves every round, closed at the end of each: it registers one
// clean-up with t, not one a round.
func NewScope(t testing.TB) *Scope {
	s := &Scope{TB: t}
	t.Cleanup(s.Close)
	return s
}

// Cleanup registers f to be called by the next Close, or at the end of the
// test if none comes.
func (s *Scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fns = append(s.fns, f)
}

// Close calls the clean-ups registered since the last Close, the last
// registered first, as testing does.
func (s *Scope) Close() {
	for {
		s.mu.Lock()
		n := len(s.fns)
		if n == 0 {
			s.mu.Unlock()
			return
		}
		f := s.fns[n-1]
		s.fns = s.fns[:n-1]
		s.mu.Unlock()
		f()
	}
}
