//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/lockdir/lockdir/lock"
)

// faultKinds are the faults TestFaults injects at each operation in turn.
var faultKinds = []struct {
	name string
	f    fault
}{
	{"ENOSPC", fault{err: syscall.ENOSPC}},
	{"EIO", fault{err: syscall.EIO}},
	{"short write", fault{err: syscall.EIO, short: shortOffset}}, // other operations fail with EIO
}

// dirState is readDirState for TestFaults: it fails the test on an error.
func dirState(t *testing.T, dir string) regState {
	t.Helper()
	s, err := readDirState(dir)
	if err != nil {
		t.Fatalf("reopening without faults: %v", err)
	}
	return s
}

// managerState is readState for TestFaults: it fails the test on an error.
func managerState(t *testing.T, m *Manager) regState {
	t.Helper()
	s, err := readState(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// faultPoints fails operation 1, 2, ... of an update with each kind of
// fault in turn, until the update no longer reaches the fault, and returns
// how many fault points it tried. run makes the update in a fresh directory
// with the faults of f, and returns the directory, the faults that fired
// and the update's error. Without a fault the update must succeed and
// leave want; with one, check checks the outcome: what describes the
// fault, and hit is the operation it failed.
func faultPoints(t *testing.T, want regState, run func(f fault) (dir string, fired []faultOp, err error), check func(what, hit, dir string, err error)) int {
	t.Helper()
	points := 0
	for _, kind := range faultKinds {
		for n := 1; ; n++ {
			if n > 100 {
				t.Fatalf("%v: still hitting faults at operation %d", kind.name, n)
			}
			f := kind.f
			f.at = n
			dir, fired, err := run(f)
			if len(fired) == 0 {
				if err != nil {
					t.Fatalf("%v: no fault at operation %d, but: %v", kind.name, n, err)
				}
				if got := dirState(t, dir); !got.equal(want) {
					t.Fatalf("without faults: %v, want %v", got, want)
				}
				break
			}
			points++
			hit := fired[0].String()
			check(fmt.Sprintf("%v on operation %d (%s)", kind.name, n, hit), hit, dir, err)
		}
	}
	return points
}

// tidying reports whether the operation hit, as faultOp.String gives it,
// only tidies up after a registry was replaced, so that a fault there may
// go unreported: closing the registry that was just replaced or the
// staging directory, or removing the staging directory.
func tidying(hit string) bool {
	return strings.HasPrefix(hit, "close "+registryName) || hit == "rmdir "+stagingName(os.Geteuid())
}

// checkNoTemp checks that a replace that hit a fault at hit left no
// temporary file behind in dir, and no staging directory unless the fault
// hit its removal (then it must be empty, ready for reuse).
func checkNoTemp(t *testing.T, what, hit, dir string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(dir, tmpName)); err == nil {
		t.Errorf("%s: %s left behind", what, tmpName)
	}
	staging := filepath.Join(dir, stagingName(os.Geteuid()))
	names, err := readNames(staging)
	switch {
	case err != nil && !os.IsNotExist(err):
		t.Errorf("%s: %v", what, err)
	case len(names) > 0:
		t.Errorf("%s: %v left behind in %s", what, names, staging)
	case err == nil && !strings.HasPrefix(hit, "rmdir "):
		t.Errorf("%s: %s left behind", what, staging)
	}
}

func readNames(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names, err
}

// TestFaults fails each registry operation of each kind of update in turn
// and checks that the update reports it, that the registry holds the old
// state or the new one, and that the manager goes on working.
func TestFaults(t *testing.T) {
	t.Parallel()
	initial := []uint32{0, 1, 2, 5, 40}
	type opCase struct {
		name string
		op   func(m *Manager) error
	}
	ops := []opCase{
		{"AllocateLock", func(m *Manager) error { _, err := m.AllocateLock(); return err }},
		{"Free", func(m *Manager) error { return m.locker(5).Free() }},
		{"AllocateAndRetrieveLock", func(m *Manager) error { _, err := m.AllocateAndRetrieveLock(7); return err }},
		{"Resize grow", func(m *Manager) error { return m.Resize(40000) }},
		{"Resize shrink", func(m *Manager) error { return m.Resize(41) }},
		{"FreeAllLocks", func(m *Manager) error { return m.FreeAllLocks() }},
	}
	var mu sync.Mutex
	total := 0
	count := func(n int) {
		mu.Lock()
		total += n
		mu.Unlock()
	}
	t.Cleanup(func() { t.Logf("%d fault points tried", total) })

	setup := func(t *testing.T, fsync bool) (string, *Manager, *faultFs) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "locks")
		m, err := Create(dir, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range initial {
			if _, err := m.AllocateAndRetrieveLock(id); err != nil {
				t.Fatal(err)
			}
		}
		m.Close()
		ffs := newFaultFs()
		m, err = Open(dir, withFs(ffs), WithFsync(fsync))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return dir, m, ffs
	}

	for _, fsync := range []bool{false, true} {
		for _, oc := range ops {
			name := oc.name
			if fsync {
				name += "/fsync"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dir, m, _ := setup(t, fsync)
				old := dirState(t, dir)
				if err := oc.op(m); err != nil {
					t.Fatal(err)
				}
				want := dirState(t, dir)
				if want.equal(old) {
					t.Fatalf("%s changes nothing", oc.name)
				}
				var fm *Manager // the manager of the last run
				run := func(f fault) (string, []faultOp, error) {
					dir, m, ffs := setup(t, fsync)
					fm = m
					ffs.arm(f)
					err := oc.op(m)
					_, fired := ffs.disarm()
					return dir, fired, err
				}
				points := faultPoints(t, want, run, func(what, hit, dir string, err error) {
					got := dirState(t, dir)
					if err == nil {
						// Only closing the registry that was just
						// replaced may fail unnoticed: its contents
						// no longer matter.
						if !tidying(hit) || !got.equal(want) {
							t.Errorf("%s: %s returned no error, and the registry holds %v", what, oc.name, got)
						}
					}
					if !got.equal(old) && !got.equal(want) {
						t.Errorf("%s: registry holds %v; want the old %v or the new %v", what, got, old, want)
					}
					checkNoTemp(t, what, hit, dir)
					// The faulting manager sees the same and goes on.
					if seen := managerState(t, fm); !seen.equal(got) {
						t.Errorf("%s: the manager sees %v, a fresh one %v", what, seen, got)
					}
					l, err := fm.AllocateLock()
					if err != nil {
						t.Fatalf("%s: AllocateLock afterwards: %v", what, err)
					}
					if lw, _ := got.lowestFree(); l.ID() != lw {
						t.Errorf("%s: AllocateLock afterwards = %d, want %d", what, l.ID(), lw)
					}
					got.ids = slices.Sorted(slices.Values(append(got.ids, l.ID())))
					if after := dirState(t, dir); !after.equal(got) {
						t.Errorf("%s: after AllocateLock: %v, want %v", what, after, got)
					}
				})
				count(points)
				t.Logf("%d fault points", points)
			})
		}
	}

	t.Run("Create", func(t *testing.T) {
		t.Parallel()
		want := regState{exists: true, capacity: 100}
		run := func(f fault) (string, []faultOp, error) {
			dir := filepath.Join(t.TempDir(), "locks")
			ffs := newFaultFs()
			ffs.arm(f)
			m, err := Create(dir, 100, withFs(ffs))
			_, fired := ffs.disarm()
			if err == nil {
				m.Close()
			}
			return dir, fired, err
		}
		points := faultPoints(t, want, run, func(what, hit, dir string, err error) {
			if err == nil && !tidying(hit) {
				t.Errorf("%s: Create returned no error", what)
			}
			got := dirState(t, dir)
			if !got.equal(regState{}) && !got.equal(want) {
				t.Errorf("%s: after a failed Create: %v; want none or %v", what, got, want)
			}
			checkNoTemp(t, what, hit, dir)
			m, err := OpenOrCreate(dir, 100)
			if err != nil {
				t.Fatalf("%s: OpenOrCreate afterwards: %v", what, err)
			}
			defer m.Close()
			if got := managerState(t, m); !got.equal(want) {
				t.Errorf("%s: OpenOrCreate afterwards: %v, want %v", what, got, want)
			}
			if _, err := m.AllocateLock(); err != nil {
				t.Errorf("%s: AllocateLock afterwards: %v", what, err)
			}
		})
		count(points)
		t.Logf("%d fault points", points)
	})
	_ = lock.ErrCorrupt
}
