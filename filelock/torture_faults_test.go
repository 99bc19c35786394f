package filelock

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/lockdir/lockdir/lock"
)

// The torture-scale fault injection test: every registry update is run with
// the Nth file operation failing, for every N, and then random sequences of
// updates run under a random fault schedule, checked against a model. See
// docs/reliability.md.

// Sizes: by default (plain go test) a smoke run of a few seconds; with
// LOCKDIR_TORTURE=short (make torture, CI) the full systematic matrix and
// 5 s of random steps; with LOCKDIR_TORTURE=long or -torture.long, 2
// minutes of random steps, or -torture.duration.
var (
	tortureLong     = flag.Bool("torture.long", false, "long mode: run TestTortureFaults for -torture.duration")
	tortureDuration = flag.Duration("torture.duration", 0, "how long the random phase of TestTortureFaults runs")
)

// tortureMode returns "smoke", "short" or "long".
func tortureMode() string {
	switch m := os.Getenv("LOCKDIR_TORTURE"); {
	case *tortureLong || m == "long":
		return "long"
	case m == "short":
		return "short"
	}
	return "smoke"
}

func tortureTime(t *testing.T, smoke, short time.Duration) time.Duration {
	d := *tortureDuration
	if d == 0 {
		if s := os.Getenv("LOCKDIR_TORTURE_DURATION"); s != "" {
			var err error
			if d, err = time.ParseDuration(s); err != nil {
				t.Fatalf("LOCKDIR_TORTURE_DURATION: %v", err)
			}
		}
	}
	if d == 0 {
		switch tortureMode() {
		case "smoke":
			d = smoke
		case "short":
			d = short
		default:
			d = 2 * time.Minute
		}
	}
	if testing.Short() {
		d = min(d, smoke)
	}
	return d
}

// stormFs counts the file operations made through it and fails the
// failAt-th (and, if sticky, every later one) with err. A failing write is
// short if short is set: some of its bytes reach the file first.
type stormFs struct {
	afero.Fs
	mu     sync.Mutex
	n      int
	failAt int // 0: no fault
	sticky bool
	short  shortMode
	err    error
	fired  []string // operations that failed
	ops    []string // every operation since arm
}

// shortMode says how much of a failing write reaches the file.
type shortMode int

const (
	shortNone   shortMode = iota
	shortHalf             // the first half
	shortHeader           // the first 12 bytes: part of a page's or journal record's header
	shortAllBut           // all but the last byte
)

func (s shortMode) String() string {
	return [...]string{"no", "half", "12-byte", "all-but-one-byte"}[s]
}

func (s shortMode) len(n int) int {
	switch s {
	case shortHalf:
		return n / 2
	case shortHeader:
		return min(n, 12)
	case shortAllBut:
		return max(n-1, 0)
	}
	return 0
}

func newStormFs() *stormFs { return &stormFs{Fs: afero.NewOsFs()} }

func (f *stormFs) arm(failAt int, err error, short shortMode, sticky bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n, f.failAt, f.err, f.short, f.sticky, f.fired, f.ops = 0, failAt, err, short, sticky, nil, nil
}

func (f *stormFs) disarm() (ops, fired []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ops, fired = f.ops, f.fired
	f.failAt, f.ops, f.fired = 0, nil, nil
	return ops, fired
}

// op records an operation and reports whether it must fail.
func (f *stormFs) op(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.ops = append(f.ops, name)
	if f.failAt > 0 && (f.n == f.failAt || f.sticky && f.n > f.failAt) {
		f.fired = append(f.fired, name)
		return true
	}
	return false
}

func (f *stormFs) pathErr(op, name string) error {
	return &fs.PathError{Op: op, Path: name, Err: f.err}
}

func (f *stormFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	if f.op("open") {
		return nil, f.pathErr("open", name)
	}
	file, err := f.Fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &stormFile{File: file, fs: f}, nil
}

func (f *stormFs) Open(name string) (afero.File, error) { return f.OpenFile(name, os.O_RDONLY, 0) }

func (f *stormFs) Remove(name string) error {
	if f.op("remove") {
		return f.pathErr("remove", name)
	}
	return f.Fs.Remove(name)
}

func (f *stormFs) Rename(from, to string) error {
	if f.op("rename") {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: f.err}
	}
	return f.Fs.Rename(from, to)
}

func (f *stormFs) Chmod(name string, mode os.FileMode) error {
	if f.op("chmod") {
		return f.pathErr("chmod", name)
	}
	return f.Fs.Chmod(name, mode)
}

func (f *stormFs) Chown(name string, uid, gid int) error {
	if f.op("chown") {
		return f.pathErr("chown", name)
	}
	return f.Fs.Chown(name, uid, gid)
}

type stormFile struct {
	afero.File
	fs *stormFs
}

func (f *stormFile) Fd() uintptr { return f.File.(fdFile).Fd() }

func (f *stormFile) write(b []byte, do func([]byte) (int, error)) (int, error) {
	if !f.fs.op("write") {
		return do(b)
	}
	n := 0
	if k := f.fs.short.len(len(b)); k > 0 {
		n, _ = do(b[:k])
	}
	return n, f.fs.pathErr("write", f.Name())
}

func (f *stormFile) Write(b []byte) (int, error) { return f.write(b, f.File.Write) }

func (f *stormFile) WriteAt(b []byte, off int64) (int, error) {
	return f.write(b, func(b []byte) (int, error) { return f.File.WriteAt(b, off) })
}

func (f *stormFile) Sync() error {
	if f.fs.op("sync") {
		return f.fs.pathErr("sync", f.Name())
	}
	return f.File.Sync()
}

func (f *stormFile) Close() error {
	fail := f.fs.op("close")
	err := f.File.Close() // a failed close(2) still closes
	if fail {
		return f.fs.pathErr("close", f.Name())
	}
	return err
}

// stormState is what a registry holds: its capacity and allocated IDs.
type stormState struct {
	capacity uint32
	alloc    []uint32 // ascending
}

func (s stormState) String() string {
	ids := s.alloc
	if len(ids) > 8 {
		return fmt.Sprintf("cap %d, %d allocated (%v ...)", s.capacity, len(ids), ids[:8])
	}
	return fmt.Sprintf("cap %d, allocated %v", s.capacity, ids)
}

func (s stormState) equal(o stormState) bool {
	return s.capacity == o.capacity && slices.Equal(s.alloc, o.alloc)
}

func (s stormState) with(id uint32, set bool) stormState {
	ids := slices.Clone(s.alloc)
	i, found := slices.BinarySearch(ids, id)
	switch {
	case set && !found:
		ids = slices.Insert(ids, i, id)
	case !set && found:
		ids = slices.Delete(ids, i, i+1)
	}
	return stormState{s.capacity, ids}
}

func (s stormState) lowestFree() (uint32, bool) {
	var id uint32
	for _, a := range s.alloc {
		if a != id {
			break
		}
		id++
	}
	return id, id < s.capacity
}

// readStormState reads the state through m and checks that AvailableLocks
// agrees with it.
func readStormState(m *Manager) (stormState, error) {
	c, err := m.Capacity()
	if err != nil {
		return stormState{}, err
	}
	ids, err := m.Allocated()
	if err != nil {
		return stormState{}, err
	}
	av, err := m.AvailableLocks()
	if err != nil {
		return stormState{}, err
	}
	if *av != c-uint32(len(ids)) {
		return stormState{}, fmt.Errorf("AvailableLocks %d, but capacity %d and %d allocated", *av, c, len(ids))
	}
	return stormState{c, ids}, nil
}

// freshState opens dir as a new process would (so a pending journal record
// is redone) and reads its state.
func freshState(dir string) (stormState, error) {
	m, err := Open(dir)
	if err != nil {
		return stormState{}, err
	}
	defer m.Close()
	return readStormState(m)
}

// faultStep is one registry update with what it should do.
type faultStep struct {
	name string
	// run performs the update on m; expect is the state it leads to from
	// old if it succeeds, and the error it must return without a fault,
	// if any (a sentinel).
	run    func(m *Manager) error
	expect func(old stormState) (stormState, error)
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
		expect: func(old stormState) (stormState, error) {
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
		expect: func(old stormState) (stormState, error) {
			if id >= old.capacity {
				return old, lock.ErrInvalidID
			}
			if _, found := slices.BinarySearch(old.alloc, id); found {
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
		expect: func(old stormState) (stormState, error) {
			if id >= old.capacity {
				return old, lock.ErrInvalidID
			}
			if _, found := slices.BinarySearch(old.alloc, id); !found {
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
		expect: func(old stormState) (stormState, error) {
			if len(old.alloc) > 0 && old.alloc[len(old.alloc)-1] >= n {
				return old, lock.ErrAllocated
			}
			return stormState{n, old.alloc}, nil
		},
	}
}

func stepFreeAll() faultStep {
	return faultStep{
		name:   "FreeAllLocks",
		run:    func(m *Manager) error { return m.FreeAllLocks() },
		expect: func(old stormState) (stormState, error) { return stormState{old.capacity, nil}, nil },
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
	ffs    *stormFs
	m      *Manager
	state  stormState
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
	c.ffs.arm(failAt, ferr, short, sticky)
	err := st.run(c.m)
	ops, firedOps := c.ffs.disarm()
	fired = len(firedOps) > 0
	desc := fmt.Sprintf("%s with %v on op %d of %v (%v short write, sticky %v; fired on %v)", st.name, ferr, failAt, ops, short, sticky, firedOps)
	if fired {
		c.points++
		for _, o := range firedOps {
			c.byOp[o]++
		}
	}

	// What does a new process see?
	got, ferr2 := freshState(c.dir)
	if ferr2 != nil {
		c.failf("%s: then Open: %v", desc, ferr2)
		return fired
	}
	// And this manager, now without faults?
	if mine, err := readStormState(c.m); err != nil || !mine.equal(got) {
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
	ffs := newStormFs()
	m, err := Open(dir, withFs(ffs), WithFsync(fsync))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c := &faultChecker{t: t, dir: dir, ffs: ffs, m: m, byOp: map[string]int{}}
	if c.state, err = readStormState(m); err != nil {
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
	if tortureMode() == "smoke" || testing.Short() {
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
	t.Logf("FIGURE %s: systematic (%s): %d fault points (%d runs), by operation %v", t.Name(), tortureMode(), systematic, steps, byOp)

	// Random: one manager, a long random sequence of updates, each with
	// no fault, or one, or a run of them, at a random operation.
	d := tortureTime(t, time.Second, 5*time.Second)
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
			if len(c.state.alloc) > 0 && rng.IntN(4) != 0 {
				return c.state.alloc[rng.IntN(len(c.state.alloc))]
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
