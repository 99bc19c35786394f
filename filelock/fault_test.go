package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/lockdir/lockdir/lock"
	"github.com/spf13/afero"
)

type faultKind int

const (
	faultENOSPC faultKind = iota
	faultEIO
	faultShort // writes fail after writing a prefix; other operations fail with EIO
)

func (k faultKind) String() string { return [...]string{"ENOSPC", "EIO", "short write"}[k] }

// faultFs is an afero.OsFs that fails the failAt'th operation (counting
// from 1 once armed) on any file or on the file system.
type faultFs struct {
	afero.Fs
	mu     sync.Mutex
	armed  bool
	n      int
	failAt int
	kind   faultKind
	hitOp  string // the operation that failed, once one did
}

func newFaultFs() *faultFs { return &faultFs{Fs: afero.NewOsFs()} }

func (f *faultFs) arm(failAt int, kind faultKind) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed, f.n, f.failAt, f.kind, f.hitOp = true, 0, failAt, kind, ""
}

func (f *faultFs) disarm() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed = false
}

func (f *faultFs) hit() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hitOp
}

// fault counts an operation and returns the error to inject, if it is the
// one to fail.
func (f *faultFs) fault(op, name string) (faultKind, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.armed {
		return 0, nil
	}
	f.n++
	if f.n != f.failAt {
		return 0, nil
	}
	f.hitOp = op + " " + filepath.Base(name)
	errno := syscall.EIO
	if f.kind == faultENOSPC {
		errno = syscall.ENOSPC
	}
	return f.kind, &fs.PathError{Op: op, Path: name, Err: errno}
}

func (f *faultFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	if _, err := f.fault("open", name); err != nil {
		return nil, err
	}
	file, err := f.Fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFs) Open(name string) (afero.File, error) { return f.OpenFile(name, os.O_RDONLY, 0) }

func (f *faultFs) Create(name string) (afero.File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

func (f *faultFs) Remove(name string) error {
	if _, err := f.fault("remove", name); err != nil {
		return err
	}
	return f.Fs.Remove(name)
}

func (f *faultFs) Rename(from, to string) error {
	if _, err := f.fault("rename", from); err != nil {
		return err
	}
	return f.Fs.Rename(from, to)
}

func (f *faultFs) Chmod(name string, mode os.FileMode) error {
	if _, err := f.fault("chmod", name); err != nil {
		return err
	}
	return f.Fs.Chmod(name, mode)
}

func (f *faultFs) Chown(name string, uid, gid int) error {
	if _, err := f.fault("chown", name); err != nil {
		return err
	}
	return f.Fs.Chown(name, uid, gid)
}

// faultFile is an *os.File from afero.OsFs that may fail. It keeps Fd, which
// the registry needs for its mapping.
type faultFile struct {
	afero.File
	fs *faultFs
}

func (f *faultFile) Fd() uintptr { return f.File.(interface{ Fd() uintptr }).Fd() }

func (f *faultFile) Write(b []byte) (int, error) {
	kind, err := f.fs.fault("write", f.Name())
	if err != nil {
		if kind == faultShort && len(b) > 1 {
			n, _ := f.File.Write(b[:len(b)/2])
			return n, err
		}
		return 0, err
	}
	return f.File.Write(b)
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	kind, err := f.fs.fault("writeat", f.Name())
	if err != nil {
		if kind == faultShort && len(b) > 1 {
			n, _ := f.File.WriteAt(b[:len(b)/2+7], off)
			return n, err
		}
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

func (f *faultFile) Sync() error {
	if _, err := f.fs.fault("sync", f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Close() error {
	if _, err := f.fs.fault("close", f.Name()); err != nil {
		f.File.Close() // close(2) frees the descriptor even when it fails
		return err
	}
	return f.File.Close()
}

func (f *faultFile) Truncate(size int64) error {
	if _, err := f.fs.fault("truncate", f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// regState is what a fresh Manager without faults sees in a directory.
type regState struct {
	exists   bool
	capacity uint32
	ids      []uint32
}

func (s regState) String() string {
	if !s.exists {
		return "no registry"
	}
	return fmt.Sprintf("capacity %d, allocated %v", s.capacity, s.ids)
}

func (s regState) equal(o regState) bool {
	return s.exists == o.exists && s.capacity == o.capacity && slices.Equal(s.ids, o.ids)
}

func readState(t *testing.T, dir string) regState {
	t.Helper()
	m, err := Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return regState{}
	}
	if err != nil {
		t.Fatalf("reopening without faults: %v", err)
	}
	defer m.Close()
	return managerState(t, m)
}

func managerState(t *testing.T, m *Manager) regState {
	t.Helper()
	c, err := m.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := m.Allocated()
	if err != nil {
		t.Fatal(err)
	}
	return regState{exists: true, capacity: c, ids: ids}
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
				old := readState(t, dir)
				if err := oc.op(m); err != nil {
					t.Fatal(err)
				}
				want := readState(t, dir)
				if want.equal(old) {
					t.Fatalf("%s changes nothing", oc.name)
				}
				points := 0
				for _, kind := range []faultKind{faultENOSPC, faultEIO, faultShort} {
					for n := 1; ; n++ {
						if n > 100 {
							t.Fatalf("%v: still hitting faults at operation %d", kind, n)
						}
						dir, m, ffs := setup(t, fsync)
						ffs.arm(n, kind)
						err := oc.op(m)
						ffs.disarm()
						hit := ffs.hit()
						if hit == "" {
							if err != nil {
								t.Fatalf("%v: no fault at operation %d, but: %v", kind, n, err)
							}
							if got := readState(t, dir); !got.equal(want) {
								t.Fatalf("without faults: %v, want %v", got, want)
							}
							break
						}
						points++
						what := fmt.Sprintf("%v on operation %d (%s)", kind, n, hit)
						got := readState(t, dir)
						if err == nil {
							// Only closing the registry that was just
							// replaced may fail unnoticed: its contents
							// no longer matter.
							if !strings.HasPrefix(hit, "close "+registryName) || !got.equal(want) {
								t.Errorf("%s: %s returned no error, and the registry holds %v", what, oc.name, got)
							}
						}
						if !got.equal(old) && !got.equal(want) {
							t.Errorf("%s: registry holds %v; want the old %v or the new %v", what, got, old, want)
						}
						if _, err := os.Lstat(filepath.Join(dir, tmpName)); err == nil {
							t.Errorf("%s: %s left behind", what, tmpName)
						}
						// The faulting manager sees the same and goes on.
						if seen := managerState(t, m); !seen.equal(got) {
							t.Errorf("%s: the manager sees %v, a fresh one %v", what, seen, got)
						}
						l, err := m.AllocateLock()
						if err != nil {
							t.Fatalf("%s: AllocateLock afterwards: %v", what, err)
						}
						if lw, _ := modelLowest(got.capacity, got.ids); l.ID() != lw {
							t.Errorf("%s: AllocateLock afterwards = %d, want %d", what, l.ID(), lw)
						}
						got.ids = slices.Sorted(slices.Values(append(got.ids, l.ID())))
						if after := readState(t, dir); !after.equal(got) {
							t.Errorf("%s: after AllocateLock: %v, want %v", what, after, got)
						}
					}
				}
				count(points)
				t.Logf("%d fault points", points)
			})
		}
	}

	t.Run("Create", func(t *testing.T) {
		t.Parallel()
		points := 0
		want := regState{exists: true, capacity: 100}
		for _, kind := range []faultKind{faultENOSPC, faultEIO, faultShort} {
			for n := 1; ; n++ {
				if n > 100 {
					t.Fatalf("%v: still hitting faults at operation %d", kind, n)
				}
				dir := filepath.Join(t.TempDir(), "locks")
				ffs := newFaultFs()
				ffs.arm(n, kind)
				m, err := Create(dir, 100, withFs(ffs))
				ffs.disarm()
				hit := ffs.hit()
				if hit == "" {
					if err != nil {
						t.Fatalf("%v: no fault at operation %d, but: %v", kind, n, err)
					}
					m.Close()
					if got := readState(t, dir); !got.equal(want) {
						t.Fatalf("without faults: %v, want %v", got, want)
					}
					break
				}
				points++
				what := fmt.Sprintf("%v on operation %d (%s)", kind, n, hit)
				if err == nil {
					m.Close()
					t.Errorf("%s: Create returned no error", what)
				}
				got := readState(t, dir)
				if !got.equal(regState{}) && !got.equal(want) {
					t.Errorf("%s: after a failed Create: %v; want none or %v", what, got, want)
				}
				if _, err := os.Lstat(filepath.Join(dir, tmpName)); err == nil {
					t.Errorf("%s: %s left behind", what, tmpName)
				}
				m, err = OpenOrCreate(dir, 100)
				if err != nil {
					t.Fatalf("%s: OpenOrCreate afterwards: %v", what, err)
				}
				if got := managerState(t, m); !got.equal(want) {
					t.Errorf("%s: OpenOrCreate afterwards: %v, want %v", what, got, want)
				}
				if _, err := m.AllocateLock(); err != nil {
					t.Errorf("%s: AllocateLock afterwards: %v", what, err)
				}
				m.Close()
			}
		}
		count(points)
		t.Logf("%d fault points", points)
	})
	_ = lock.ErrCorrupt
}
