//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// The fault-injecting file system that TestFaults and TestTortureFaults put
// behind the withFs seam, and the registry state they compare.

// fault is a schedule of injected errors for faultFs.arm.
type fault struct {
	at     int       // the operation to fail, counting from 1 after arm; 0: none
	err    error     // what a failing operation reports (an errno); nil: EIO
	short  shortMode // how much of a failing write reaches the file first
	sticky bool      // every operation after the at'th fails too
	kill   bool      // instead of failing, the process kills itself with SIGKILL
}

func (f fault) String() string {
	s := fmt.Sprintf("%v on op %d", f.err, f.at)
	if f.short != shortNone {
		s += fmt.Sprintf(", %v short write", f.short)
	}
	if f.sticky {
		s += ", sticky"
	}
	return s
}

// shortMode says how much of a failing write reaches the file.
type shortMode int

const (
	shortNone   shortMode = iota
	shortHalf             // the first half
	shortHeader           // the first 12 bytes: part of a page's or journal record's header
	shortAllBut           // all but the last byte
	shortOffset           // the first half of a Write; of a WriteAt, the first half and 7 bytes more
)

func (s shortMode) String() string {
	return [...]string{"no", "half", "12-byte", "all-but-one-byte", "half(+7 at an offset)"}[s]
}

// len is how many of n bytes a failing write (at an offset, if at) writes.
func (s shortMode) len(n int, at bool) int {
	switch s {
	case shortHalf:
		return n / 2
	case shortHeader:
		return min(n, 12)
	case shortAllBut:
		return max(n-1, 0)
	case shortOffset:
		if n <= 1 {
			return 0
		}
		if at {
			return min(n/2+7, n)
		}
		return n / 2
	}
	return 0
}

// faultOp is one operation made through a faultFs.
type faultOp struct{ op, path string }

func (o faultOp) String() string { return o.op + " " + filepath.Base(o.path) }

// faultFs is the production dirFS (osFS) that, once armed, counts and logs
// the file operations made through it and fails those its fault schedules.
type faultFs struct {
	dirFS
	mu    sync.Mutex
	armed bool
	n     int
	f     fault
	ops   []faultOp // every operation since arm
	fired []faultOp // those that failed
}

func newFaultFs() *faultFs { return &faultFs{dirFS: osFS{}} }

// arm starts counting operations from 1 under schedule f.
func (f *faultFs) arm(sched fault) {
	if sched.err == nil {
		sched.err = syscall.EIO
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed, f.n, f.f, f.ops, f.fired = true, 0, sched, nil, nil
}

// disarm stops injecting faults and returns the operations made since arm
// and those that failed.
func (f *faultFs) disarm() (ops, fired []faultOp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ops, fired = f.ops, f.fired
	f.armed, f.ops, f.fired = false, nil, nil
	return ops, fired
}

// inject logs an operation and returns the schedule and whether the
// operation must fail.
func (f *faultFs) inject(op, path string) (fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.armed {
		return fault{}, false
	}
	f.n++
	f.ops = append(f.ops, faultOp{op, path})
	if f.f.at > 0 && (f.n == f.f.at || f.f.sticky && f.n > f.f.at) {
		if f.f.kill {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // until the signal lands
		}
		f.fired = append(f.fired, faultOp{op, path})
		return f.f, true
	}
	return f.f, false
}

// check is inject for an operation that, failing, does nothing.
func (f *faultFs) check(op, path string) error {
	if sched, fail := f.inject(op, path); fail {
		return &fs.PathError{Op: op, Path: path, Err: sched.err}
	}
	return nil
}

func (f *faultFs) OpenAt(dirfd int, name string, flags int, perm uint32) (regFile, error) {
	if err := f.check("open", name); err != nil {
		return nil, err
	}
	file, err := f.dirFS.OpenAt(dirfd, name, flags, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{regFile: file, fs: f, name: name}, nil
}

func (f *faultFs) UnlinkAt(dirfd int, name string) error {
	if err := f.check("remove", name); err != nil {
		return err
	}
	return f.dirFS.UnlinkAt(dirfd, name)
}

func (f *faultFs) RenameAt(fromfd int, from string, tofd int, to string) error {
	if sched, fail := f.inject("rename", from); fail {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: sched.err}
	}
	return f.dirFS.RenameAt(fromfd, from, tofd, to)
}

func (f *faultFs) MkdirAt(dirfd int, name string, perm uint32) error {
	if err := f.check("mkdir", name); err != nil {
		return err
	}
	return f.dirFS.MkdirAt(dirfd, name, perm)
}

func (f *faultFs) RmdirAt(dirfd int, name string) error {
	if err := f.check("rmdir", name); err != nil {
		return err
	}
	return f.dirFS.RmdirAt(dirfd, name)
}

// SyncDir counts as a "sync" of the directory, ".".
func (f *faultFs) SyncDir(dirfd int) error {
	if err := f.check("sync", "."); err != nil {
		return err
	}
	return f.dirFS.SyncDir(dirfd)
}

func (f *faultFs) Fchmod(file regFile, perm uint32) error {
	if err := f.check("chmod", fileName(file)); err != nil {
		return err
	}
	return f.dirFS.Fchmod(file, perm)
}

func (f *faultFs) Fchown(file regFile, gid int) error {
	if err := f.check("chown", fileName(file)); err != nil {
		return err
	}
	return f.dirFS.Fchown(file, gid)
}

func (f *faultFs) LstatAt(dirfd int, name string) (fileInfo, error) {
	if err := f.check("stat", name); err != nil {
		return fileInfo{}, err
	}
	return f.dirFS.LstatAt(dirfd, name)
}

func (f *faultFs) Fstat(file regFile) (fileInfo, error) {
	if err := f.check("fstat", fileName(file)); err != nil {
		return fileInfo{}, err
	}
	return f.dirFS.Fstat(file)
}

// faultFile is a registry file from osFS that may fail. Its Fd is the real
// descriptor, which the registry needs for its mapping.
type faultFile struct {
	regFile
	fs   *faultFs
	name string
}

func (f *faultFile) Name() string { return f.name }

func (f *faultFile) write(b []byte, at bool, do func([]byte) (int, error)) (int, error) {
	sched, fail := f.fs.inject("write", f.Name())
	if !fail {
		return do(b)
	}
	n := 0
	if k := sched.short.len(len(b), at); k > 0 {
		n, _ = do(b[:k])
	}
	return n, &fs.PathError{Op: "write", Path: f.Name(), Err: sched.err}
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	return f.write(b, true, func(b []byte) (int, error) { return f.regFile.WriteAt(b, off) })
}

func (f *faultFile) Sync() error {
	if err := f.fs.check("sync", f.Name()); err != nil {
		return err
	}
	return f.regFile.Sync()
}

func (f *faultFile) Close() error {
	ferr := f.fs.check("close", f.Name())
	err := f.regFile.Close() // a failed close(2) still frees the descriptor
	if ferr != nil {
		return ferr
	}
	return err
}

// regState is what a registry holds, as a Manager without faults reads it.
type regState struct {
	exists   bool // false: there is no registry
	capacity uint32
	ids      []uint32 // allocated, ascending
}

func (s regState) String() string {
	switch {
	case !s.exists:
		return "no registry"
	case len(s.ids) > 8:
		return fmt.Sprintf("capacity %d, %d allocated (%v ...)", s.capacity, len(s.ids), s.ids[:8])
	}
	return fmt.Sprintf("capacity %d, allocated %v", s.capacity, s.ids)
}

func (s regState) equal(o regState) bool {
	return s.exists == o.exists && s.capacity == o.capacity && slices.Equal(s.ids, o.ids)
}

// with returns s with id allocated (set) or free.
func (s regState) with(id uint32, set bool) regState {
	ids := slices.Clone(s.ids)
	i, found := slices.BinarySearch(ids, id)
	switch {
	case set && !found:
		ids = slices.Insert(ids, i, id)
	case !set && found:
		ids = slices.Delete(ids, i, i+1)
	}
	return regState{exists: s.exists, capacity: s.capacity, ids: ids}
}

func (s regState) lowestFree() (uint32, bool) { return modelLowest(s.capacity, s.ids) }

// readState reads the state through m and checks that AvailableLocks
// agrees with it.
func readState(m *Manager) (regState, error) {
	c, err := m.Capacity()
	if err != nil {
		return regState{}, err
	}
	ids, err := m.Allocated()
	if err != nil {
		return regState{}, err
	}
	av, err := m.AvailableLocks()
	if err != nil {
		return regState{}, err
	}
	if *av != c-uint32(len(ids)) {
		return regState{}, fmt.Errorf("AvailableLocks %d, but capacity %d and %d allocated", *av, c, len(ids))
	}
	return regState{exists: true, capacity: c, ids: ids}, nil
}

// readDirState opens dir without faults, as a new process would (so a
// pending journal record is redone), and reads its state: the zero
// regState if dir has no registry.
func readDirState(dir string) (regState, error) {
	m, err := Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return regState{}, nil
	}
	if err != nil {
		return regState{}, err
	}
	defer m.Close()
	return readState(m)
}
