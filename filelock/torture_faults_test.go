//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/internal/tortureflag"
	"github.com/lockdir/lockdir/lock"
)

// The torture-scale fault injection test: every registry update is run with
// the Nth file operation failing, for every N, and then random sequences of
// updates run under a random fault schedule, checked against a model. See
// docs/reliability.md.

// Sizes: by default (plain go test) a smoke run of a few seconds; with
// LOCKDIR_TORTURE=short (make torture, CI) the full systematic matrix and
// 5 s of random steps; with LOCKDIR_TORTURE=long or -torture.long, 2
// minutes of random steps, or -torture.duration (package tortureflag).

// faultStep is one registry update with what it should do.
type faultStep struct {
	name string
	// run performs the update on m; expect is the state it leads to from
	// old if it succeeds, and the error it must return without a fault,
	// if any (a sentinel).
	run    func(m *Manager) error
	expect func(old regState) (regState, error)
}

func stepAllocate() faultStep {
	var want uint32
	return faultStep{
		name: "AllocateLock",
		run: func(m *Manager) error {
			l, err := m.AllocateLock()
			if err == nil && l.ID() != want {
				return fmt.Errorf("AllocateLock returned %d, not the lowest free ID %d", l.ID(), want)
			}
			return err
		},
		expect: func(old regState) (regState, error) {
			id, ok := old.lowestFree()
			if !ok {
				return old, lock.ErrNoFreeLocks
			}
			want = id
			return old.with(id, true), nil
		},
	}
}

func stepAllocateID(id uint32) faultStep {
	return faultStep{
		name: fmt.Sprintf("AllocateAndRetrieveLock(%d)", id),
		run: func(m *Manager) error {
			_, err := m.AllocateAndRetrieveLock(id)
			return err
		},
		expect: func(old regState) (regState, error) {
			if id >= old.capacity {
				return old, lock.ErrInvalidID
			}
			if _, found := slices.BinarySearch(old.ids, id); found {
				return old, lock.ErrAllocated
			}
			return old.with(id, true), nil
		},
	}
}

func stepFree(id uint32) faultStep {
	return faultStep{
		name: fmt.Sprintf("Free(%d)", id),
		run: func(m *Manager) error {
			l, err := m.RetrieveLock(id)
			if err != nil {
				return err
			}
			return l.Free()
		},
		expect: func(old regState) (regState, error) {
			if id >= old.capacity {
				return old, lock.ErrInvalidID
			}
			if _, found := slices.BinarySearch(old.ids, id); !found {
				return old, lock.ErrNotAllocated
			}
			return old.with(id, false), nil
		},
	}
}

func stepResize(n uint32) faultStep {
	return faultStep{
		name: fmt.Sprintf("Resize(%d)", n),
		run:  func(m *Manager) error { return m.Resize(n) },
		expect: func(old regState) (regState, error) {
			if len(old.ids) > 0 && old.ids[len(old.ids)-1] >= n {
				return old, lock.ErrAllocated
			}
			return regState{exists: true, capacity: n, ids: old.ids}, nil
		},
	}
}

func stepFreeAll() faultStep {
	return faultStep{
		name:   "FreeAllLocks",
		run:    func(m *Manager) error { return m.FreeAllLocks() },
		expect: func(old regState) (regState, error) { return regState{exists: true, capacity: old.capacity}, nil },
	}
}

// saysMaybeApplied reports whether an update's error admits that the
// change may have taken effect.
func saysMaybeApplied(err error) bool {
	s := err.Error()
	return strings.Contains(s, "may have been applied") || strings.Contains(s, "registry replaced")
}

// faultChecker runs steps under faults and checks the outcome.
type faultChecker struct {
	t      *testing.T
	dir    string
	ffs    *faultFs
	m      *Manager
	state  regState
	points int            // steps in which a fault fired
	byOp   map[string]int // fired faults by operation
	errs   int            // steps that returned an error because of a fault
	newErr int            // ... of which the change had been applied anyway
	silent int            // fault fired but the call succeeded (fault in cleanup)
	fails  int
}

func (c *faultChecker) failf(format string, args ...any) {
	c.t.Helper()
	c.fails++
	if c.fails <= 10 {
		c.t.Errorf(format, args...)
	}
	if c.fails == 10 {
		c.t.Fatal("too many failures")
	}
}

// do runs st with the given fault schedule and checks: the call fails with
// the injected error (or succeeds if the fault was in tidying up), the
// registry on disk is exactly the old or the new state (new only if the
// call succeeded or its error says the change may have been applied), and
// the manager still works.
func (c *faultChecker) do(st faultStep, failAt int, ferr error, short shortMode, sticky bool) (fired bool) {
	c.t.Helper()
	old := c.state
	want, wantErr := st.expect(old)
	c.ffs.arm(fault{at: failAt, err: ferr, short: short, sticky: sticky})
	err := st.run(c.m)
	ops, firedOps := c.ffs.disarm()
	fired = len(firedOps) > 0
	desc := fmt.Sprintf("%s with %v on op %d of %v (%v short write, sticky %v; fired on %v)", st.name, ferr, failAt, ops, short, sticky, firedOps)
	if fired {
		c.points++
		for _, o := range firedOps {
			c.byOp[o.op]++
		}
	}

	// What does a new process see?
	got, ferr2 := readDirState(c.dir)
	if ferr2 == nil && !got.exists {
		ferr2 = fs.ErrNotExist
	}
	if ferr2 != nil {
		c.failf("%s: then Open: %v", desc, ferr2)
		return fired
	}
	// And this manager, now without faults?
	if mine, err := readState(c.m); err != nil || !mine.equal(got) {
		c.failf("%s: the manager reads %v, %v; a new one %v", desc, mine, err, got)
	}

	switch {
	case wantErr != nil:
		if !errors.Is(err, wantErr) && !(fired && errors.Is(err, ferr)) {
			c.failf("%s: got error %v, want %v", desc, err, wantErr)
		}
		if !got.equal(old) {
			c.failf("%s: failed update changed the registry from %v to %v", desc, old, got)
		}
	case err == nil:
		if fired {
			c.silent++
		}
		if !got.equal(want) {
			c.failf("%s: succeeded, but the registry holds %v, want %v", desc, got, want)
		}
	default:
		c.errs++
		if !fired || !errors.Is(err, ferr) {
			c.failf("%s: error %v does not match the injected %v", desc, err, ferr)
		}
		switch {
		case got.equal(old):
		case got.equal(want) && saysMaybeApplied(err):
			c.newErr++
		case got.equal(want):
			c.failf("%s: returned %v, but the change was applied and the error does not say so", desc, err)
		default:
			c.failf("%s: returned %v, and the registry holds %v: neither the old %v nor the new %v", desc, err, got, old, want)
		}
	}
	c.state = got

	// Usable afterwards: allocate and free a lock.
	l, err := c.m.AllocateLock()
	if errors.Is(err, lock.ErrNoFreeLocks) {
		return fired
	}
	if err != nil {
		c.failf("%s: then AllocateLock: %v", desc, err)
		return fired
	}
	if err := l.Free(); err != nil {
		c.failf("%s: then Free: %v", desc, err)
	}
	return fired
}

// faultTemplate is a registry made once and copied for each checker,
// which saves Create's fsyncs.
type faultTemplate struct{ registry []byte }

func newFaultTemplate(t *testing.T, capacity uint32, alloc ...uint32) faultTemplate {
	dir := filepath.Join(t.TempDir(), "template")
	m, err := Create(dir, capacity)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, id := range alloc {
		if _, err := m.AllocateAndRetrieveLock(id); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, registryName))
	if err != nil {
		t.Fatal(err)
	}
	return faultTemplate{b}
}

func newFaultChecker(t *testing.T, tmpl faultTemplate, fsync bool) *faultChecker {
	dir := filepath.Join(t.TempDir(), "locks")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{registryName: tmpl.registry, masterName: nil} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ffs := newFaultFs()
	m, err := Open(dir, withFs(ffs), WithFsync(fsync))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c := &faultChecker{t: t, dir: dir, ffs: ffs, m: m, byOp: map[string]int{}}
	if c.state, err = readState(m); err != nil {
		t.Fatal(err)
	}
	return c
}

var faultErrs = []error{syscall.ENOSPC, syscall.EIO}

// TestTortureFaults fails, in turn, every file operation of every kind of
// registry update (open, write, short write, sync, rename, close, remove,
// chmod), with ENOSPC and with EIO, alone and with every later operation
// failing too; then runs random sequences of updates under a random fault
// schedule against a model of the registry.
func TestTortureFaults(t *testing.T) {
	byOp := map[string]int{}
	var points, errs, newErr, silent, steps int
	add := func(c *faultChecker) {
		points += c.points
		errs += c.errs
		newErr += c.newErr
		silent += c.silent
		for k, v := range c.byOp {
			byOp[k] += v
		}
	}

	// Systematic: each update, each operation index, each error, single
	// or sticky, short writes or not, with and without fsync.
	const page1 = bitsPerPage + 7
	updates := []func() faultStep{
		stepAllocate,
		func() faultStep { return stepAllocateID(page1) },
		func() faultStep { return stepFree(3) },
		func() faultStep { return stepResize(2 * bitsPerPage) },
		func() faultStep { return stepResize(bitsPerPage + 100) },
		stepFreeAll,
	}
	type schedule struct {
		short  shortMode
		sticky bool
	}
	fsyncs, ferrs, schedules := []bool{false, true}, faultErrs, []schedule{
		{shortNone, false}, {shortHalf, false}, {shortHeader, false},
		{shortNone, true}, {shortHalf, true}, {shortHeader, true}, {shortAllBut, true},
	}
	if tortureflag.Mode() == "smoke" || testing.Short() {
		// fsync on has every operation fsync off has; one error; the
		// schedules that found bugs.
		fsyncs, ferrs, schedules = []bool{true}, faultErrs[:1], []schedule{{shortNone, false}, {shortHeader, false}, {shortHeader, true}}
	}
	tmpl := newFaultTemplate(t, bitsPerPage+200, 0, 1, 2, 3, 5, bitsPerPage+1)
	for _, fsync := range fsyncs {
		for _, mk := range updates {
			for _, ferr := range ferrs {
				for _, mode := range schedules {
					for n := 1; ; n++ {
						c := newFaultChecker(t, tmpl, fsync)
						fired := c.do(mk(), n, ferr, mode.short, mode.sticky)
						add(c)
						steps++
						if !fired {
							break
						}
					}
				}
			}
		}
	}
	systematic := points
	t.Logf("FIGURE %s: systematic (%s): %d fault points (%d runs), by operation %v", t.Name(), tortureflag.Mode(), systematic, steps, byOp)

	// Random: one manager, a long random sequence of updates, each with
	// no fault, or one, or a run of them, at a random operation.
	d := tortureflag.Duration(t, time.Second, 5*time.Second)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	caps := []uint32{1, 64, bitsPerPage, bitsPerPage + 1, bitsPerPage + 200, 3 * bitsPerPage}
	c := newFaultChecker(t, tmpl, false)
	rsteps, reopen := 0, 0
	for end := time.Now().Add(d); time.Now().Before(end); rsteps++ {
		if rng.IntN(50) == 0 {
			// A new manager, with or without fsync.
			c.m.Close()
			m, err := Open(c.dir, withFs(c.ffs), WithFsync(rng.IntN(2) == 0))
			if err != nil {
				t.Fatal(err)
			}
			c.m = m
			reopen++
		}
		var st faultStep
		id := func() uint32 {
			if len(c.state.ids) > 0 && rng.IntN(4) != 0 {
				return c.state.ids[rng.IntN(len(c.state.ids))]
			}
			return uint32(rng.IntN(int(c.state.capacity) + 2))
		}
		switch r := rng.IntN(100); {
		case r < 35:
			st = stepAllocate()
		case r < 50:
			st = stepAllocateID(id())
		case r < 85:
			st = stepFree(id())
		case r < 97:
			st = stepResize(caps[rng.IntN(len(caps))])
		default:
			st = stepFreeAll()
		}
		failAt := 0
		if rng.IntN(3) != 0 {
			failAt = 1 + rng.IntN(12)
		}
		c.do(st, failAt, faultErrs[rng.IntN(2)], shortMode(rng.IntN(4)), rng.IntN(4) == 0)
		if c.fails > 0 {
			break
		}
	}
	add(c)
	t.Logf("FIGURE %s: random: %d steps in %v (%d reopens), %d with a fault fired; total %d fault points: %d calls failed with the injected error (%d of them after the change took effect, and said so), %d faults absorbed by a successful call; by operation %v",
		t.Name(), rsteps, d, reopen, c.points, points, errs, newErr, silent, byOp)
}
