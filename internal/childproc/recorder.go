package childproc

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// A Recorder is a testing.TB that records the failures reported to it
// instead of failing the test, for the tests of helpers that fail their
// test: of Child, and of the packages' own helpers around it. Fatalf and
// FailNow end the goroutine, as in a test, so the helper must be called
// through Run. Everything else goes to the test it wraps.
type Recorder struct {
	testing.TB
	mu    sync.Mutex
	fails []string
}

// NewRecorder returns a Recorder around t.
func NewRecorder(t testing.TB) *Recorder { return &Recorder{TB: t} }

// Helper does nothing: the failures are not printed, so there is no line
// to attribute them to.
func (r *Recorder) Helper() {}

// Errorf records a failure.
func (r *Recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails = append(r.fails, fmt.Sprintf(format, args...))
}

// Fatalf records a failure and ends the goroutine.
func (r *Recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// FailNow records a failure without a message and ends the goroutine.
func (r *Recorder) FailNow() {
	r.Errorf("FailNow")
	runtime.Goexit()
}

// Run calls fn in a goroutine of its own, so that Fatalf and FailNow can
// end it, and returns the failures reported meanwhile and whether fn
// returned rather than being ended.
func (r *Recorder) Run(fn func()) (fails []string, returned bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
		returned = true
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	fails, r.fails = r.fails, nil
	return fails, returned
}
