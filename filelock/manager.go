package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/lockdir/lockdir/lock"
)

// Manager is a lock directory opened by this process. It implements
// lock.Manager. A Manager is safe for concurrent use by multiple goroutines,
// and any number of Managers, in any number of processes, may have the same
// directory open at once.
type Manager struct {
	dir      string
	opts     options
	dirFD    int // the lock directory
	masterFD int // registry.lock, flocked around registry access

	// regMu serializes registry access within the process: a flock held
	// through masterFD does not exclude other goroutines using the same
	// descriptor.
	regMu sync.Mutex
	reg   registryFile

	closed atomic.Bool

	statesMu sync.Mutex
	states   map[uint32]weak.Pointer[lockState]

	cache fdCache
}

var _ lock.Manager = (*Manager)(nil)

type openMode int

const (
	modeOpen openMode = iota
	modeCreate
	modeOpenOrCreate
)

// Create makes a new lock directory at dir with room for numLocks locks and
// opens it. Missing parent directories are created with mode 0755. If dir
// already holds a registry, Create fails with an error matching
// fs.ErrExist. numLocks must be between 1 and MaxLocks.
func Create(dir string, numLocks uint32, opts ...Option) (*Manager, error) {
	return open(dir, modeCreate, numLocks, opts)
}

// Open opens the existing lock directory at dir. If there is none, it fails
// with an error matching fs.ErrNotExist. A registry that fails its checks
// gives an error matching lock.ErrCorrupt; it is never reset.
func Open(dir string, opts ...Option) (*Manager, error) {
	return open(dir, modeOpen, 0, opts)
}

// OpenOrCreate opens the lock directory at dir, creating it with room for
// numLocks locks if it does not exist. It is safe for many processes to call
// at once: exactly one creates the registry, and the others open it. An
// existing directory keeps its capacity, whatever numLocks says; compare
// Capacity and call Resize to change it.
func OpenOrCreate(dir string, numLocks uint32, opts ...Option) (*Manager, error) {
	return open(dir, modeOpenOrCreate, numLocks, opts)
}

func open(dir string, mode openMode, numLocks uint32, opts []Option) (*Manager, error) {
	if !supported {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: fmt.Errorf("flock(2) on %s: %w", runtime.GOOS, errors.ErrUnsupported)}
	}
	if dir == "" {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: errors.New("empty lock directory name")}
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if mode != modeOpen {
		if err := checkCapacity(numLocks); err != nil {
			return nil, &fs.PathError{Op: "create", Path: dir, Err: err}
		}
	}
	dir = filepath.Clean(dir)
	m := &Manager{
		dir:      dir,
		opts:     o,
		dirFD:    -1,
		masterFD: -1,
		states:   make(map[uint32]weak.Pointer[lockState]),
		cache:    fdCache{max: o.maxOpen, locksFD: -1},
	}
	m.reg = registryFile{
		fs:    o.fs,
		dir:   dir,
		path:  filepath.Join(dir, registryName),
		fsync: o.fsync,
		perm:  m.filePerm(),
		gid:   o.gid,
	}
	if err := m.setup(mode, numLocks); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Manager) dirPerm() uint32 {
	if m.opts.gid >= 0 {
		return 0o2770
	}
	return 0o700
}

func (m *Manager) filePerm() fs.FileMode {
	if m.opts.gid >= 0 {
		return 0o660
	}
	return 0o600
}

func (m *Manager) setup(mode openMode, numLocks uint32) error {
	created := false
	if mode != modeOpen {
		if err := os.MkdirAll(filepath.Dir(m.dir), 0o755); err != nil {
			return err
		}
		err := mkdirAt(atFDCWD, m.dir, m.dirPerm())
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return &fs.PathError{Op: "mkdir", Path: m.dir, Err: err}
		}
		created = err == nil
	}
	fd, err := openAt(atFDCWD, m.dir, oRDONLY|oDIRECTORY, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: m.dir, Err: explainOpenDir(atFDCWD, m.dir, err)}
	}
	m.dirFD = fd
	if created {
		if err := m.chmodShared(fd, m.dirPerm()); err != nil {
			return &fs.PathError{Op: "chmod", Path: m.dir, Err: err}
		}
	}
	if err := m.checkOwnedSettling(fd, true); err != nil {
		return &fs.PathError{Op: "open", Path: m.dir, Err: err}
	}

	// The master lock file is created once and never replaced, so that
	// every process always locks the same inode.
	// Open creates it too if the registry exists, since a registry is
	// useless without it.
	masterPath := filepath.Join(m.dir, masterName)
	if mode == modeOpen {
		if _, err := lstatAt(m.dirFD, registryName); errors.Is(err, fs.ErrNotExist) {
			return &fs.PathError{Op: "open", Path: m.reg.path, Err: fs.ErrNotExist}
		}
	}
	fd, err = m.openOrCreateAt(m.dirFD, masterName, oRDONLY)
	if err != nil {
		return &fs.PathError{Op: "open", Path: masterPath, Err: explainOpenFile(err)}
	}
	m.masterFD = fd
	if err := m.checkLockFile(fd); err != nil {
		return &fs.PathError{Op: "open", Path: masterPath, Err: err}
	}
	if err := m.checkOwnedSettling(fd, false); err != nil {
		return &fs.PathError{Op: "open", Path: masterPath, Err: err}
	}

	if err := m.lockMaster(lockEx); err != nil {
		return err
	}
	defer m.unlockMaster()

	_, err = lstatAt(m.dirFD, registryName)
	switch {
	case err == nil && mode == modeCreate:
		return &fs.PathError{Op: "create", Path: m.reg.path, Err: fs.ErrExist}
	case err == nil:
		if err := m.reg.refresh(m.dirFD); err != nil {
			return err
		}
	case errors.Is(err, fs.ErrNotExist) && mode == modeOpen:
		return &fs.PathError{Op: "open", Path: m.reg.path, Err: fs.ErrNotExist}
	case errors.Is(err, fs.ErrNotExist):
		if err := m.checkEmpty(); err != nil {
			return err
		}
		if err := m.reg.replace(m.dirFD, newRegistry(numLocks, nil)); err != nil {
			return err
		}
	default:
		return &fs.PathError{Op: "stat", Path: m.reg.path, Err: err}
	}
	if err := m.checkOwned(int(m.reg.f.(fdFile).Fd()), false); err != nil {
		return &fs.PathError{Op: "open", Path: m.reg.path, Err: err}
	}
	err = m.guard(func() error {
		v, err := m.reg.view()
		if err == nil {
			err = v.verify()
		}
		if err != nil {
			return wrapPath(err, m.reg.path)
		}
		return m.reg.recover(v)
	})
	if err != nil {
		return err
	}
	return m.setupLocksDir()
}

// checkEmpty refuses to turn a directory that holds anything but lockdir's
// own files into a lock directory: a mistyped path should not scatter
// lock files among someone's documents.
func (m *Manager) checkEmpty() error {
	names, err := readDirNames(m.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		switch name {
		case masterName, tmpName, locksName:
		default:
			if strings.HasPrefix(name, registryName+".") {
				// A registry moved aside by hand, as in
				// "mv registry registry.bak; lockdir init".
				continue
			}
			return &fs.PathError{Op: "create", Path: m.dir, Err: fmt.Errorf("directory is not empty (it holds %q) and has no registry: not a lock directory: %w", name, fs.ErrExist)}
		}
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (m *Manager) setupLocksDir() error {
	path := filepath.Join(m.dir, locksName)
	err := mkdirAt(m.dirFD, locksName, m.dirPerm())
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return &fs.PathError{Op: "mkdir", Path: path, Err: err}
	}
	created := err == nil
	fd, err := openAt(m.dirFD, locksName, oRDONLY|oDIRECTORY, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: explainOpenDir(m.dirFD, locksName, err)}
	}
	m.cache.locksFD = fd
	if created {
		if err := m.chmodShared(fd, m.dirPerm()); err != nil {
			return &fs.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	if err := m.checkOwnedSettling(fd, true); err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return nil
}

// openOrCreateAt opens name in the directory dirfd with flags, creating it
// first if it does not exist. A file it creates gets the manager's file mode
// exactly, whatever the umask, and in shared mode its group.
func (m *Manager) openOrCreateAt(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := openAt(dirfd, name, flags, 0)
		if !errors.Is(err, fs.ErrNotExist) {
			return fd, err
		}
		fd, err = openAt(dirfd, name, flags|oCREAT|oEXCL, uint32(m.filePerm()))
		if errors.Is(err, fs.ErrExist) {
			continue // created by someone else since; open theirs
		}
		if err != nil {
			return fd, err
		}
		if err := m.chmodShared(fd, uint32(m.filePerm())); err != nil {
			closeFD(fd)
			return -1, err
		}
		return fd, nil
	}
}

// chmodShared gives a file this manager created its exact mode, whatever
// the umask, and in shared mode its group.
func (m *Manager) chmodShared(fd int, perm uint32) error {
	if m.opts.gid >= 0 {
		if err := fchown(fd, -1, m.opts.gid); err != nil {
			return err
		}
	}
	return fchmod(fd, perm)
}

// checkOwnedSettling is checkOwned for a directory another member of the
// shared group may have created a moment ago: until its creator's fchown
// and fchmod, it has the creator's primary group and mode. In shared mode a
// refusal is retried for up to 100 ms before it stands.
func (m *Manager) checkOwnedSettling(fd int, wantDir bool) error {
	err := m.checkOwned(fd, wantDir)
	for i := 0; err != nil && m.opts.gid >= 0 && errors.Is(err, fs.ErrPermission) && i < maxDenied; i++ {
		time.Sleep(time.Millisecond)
		err = m.checkOwned(fd, wantDir)
	}
	return err
}

// errUnsafe wraps fs.ErrPermission for files filelock refuses to trust.
func errUnsafe(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), fs.ErrPermission)
}

// checkOwned refuses a file or directory that another user could tamper
// with: one owned by someone else (outside the shared group), or writable by
// others.
func (m *Manager) checkOwned(fd int, wantDir bool) error {
	fi, err := fstat(fd)
	if err != nil {
		return err
	}
	switch {
	case wantDir && !fi.isDir():
		return errors.New("not a directory")
	case !wantDir && !fi.isReg():
		return errors.New("not a regular file")
	}
	shared := m.opts.gid >= 0 && int(fi.gid) == m.opts.gid
	euid := geteuid()
	if int(fi.uid) != euid && !shared {
		return errUnsafe("owned by uid %d, not by this process's uid %d; refusing a lock directory another user controls", fi.uid, euid)
	}
	if fi.mode&0o002 != 0 {
		return errUnsafe("world-writable (mode %#o); any user could tamper with the locks", fi.mode&0o7777)
	}
	if fi.mode&0o020 != 0 && !shared {
		return errUnsafe("group-writable (mode %#o); use the shared-group option (WithSharedGroup) with group %d, or chmod g-w", fi.mode&0o7777, fi.gid)
	}
	return nil
}

// explainOpenDir explains why opening the directory name in dirfd with
// O_DIRECTORY|O_NOFOLLOW failed. Linux says ENOTDIR, not ELOOP, for a
// symlink opened that way, so a symlink is told apart by lstat.
func explainOpenDir(dirfd int, name string, err error) error {
	symlink := isSymlinkErr(err)
	if !symlink && isNotDirErr(err) {
		fi, lerr := lstatAt(dirfd, name)
		symlink = lerr == nil && fi.isLink()
	}
	switch {
	case symlink:
		return errors.New("is a symbolic link; refusing to follow it")
	case isNotDirErr(err):
		return errors.New("not a directory")
	}
	return err
}

func explainOpenFile(err error) error {
	if isSymlinkErr(err) {
		return errors.New("is a symbolic link; refusing to follow it")
	}
	return err
}

func wrapPath(err error, path string) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: "read", Path: path, Err: err}
}

// guard runs fn, turning a fault on the registry mapping (the file was
// truncated under us by something other than lockdir) into ErrCorrupt
// instead of a crash.
func (m *Manager) guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if re, ok := r.(runtime.Error); ok {
				if _, fault := r.(interface{ Addr() uintptr }); fault {
					err = &fs.PathError{Op: "read", Path: m.reg.path, Err: corruptf("fault reading registry: %v", re)}
					return
				}
			}
			panic(r)
		}
	}()
	return fn()
}

func (m *Manager) lockMaster(how int) error {
	if m.opts.timeout <= 0 {
		if err := flock(m.masterFD, how); err != nil {
			return &fs.PathError{Op: "flock", Path: filepath.Join(m.dir, masterName), Err: err}
		}
		return nil
	}
	path := filepath.Join(m.dir, masterName)
	deadline := time.Now().Add(m.opts.timeout)
	delay := 50 * time.Microsecond
	for {
		err := flock(m.masterFD, how|lockNB)
		if err == nil {
			return nil
		}
		if !isWouldBlock(err) {
			return &fs.PathError{Op: "flock", Path: path, Err: err}
		}
		if time.Now().After(deadline) {
			return &fs.PathError{Op: "flock", Path: path, Err: fmt.Errorf("registry busy for over %v; a process holding %s may be stopped or hung: %w", m.opts.timeout, masterName, os.ErrDeadlineExceeded)}
		}
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Millisecond)
	}
}

func (m *Manager) unlockMaster() { _ = flock(m.masterFD, lockUn) }

// withRegistry runs fn on a current view of the registry while holding the
// master lock, exclusively if the operation may write.
func (m *Manager) withRegistry(exclusive bool, fn func(v *view) error) error {
	m.regMu.Lock()
	defer m.regMu.Unlock()
	if m.closed.Load() {
		return lock.ErrClosed
	}
	how := lockSh
	if exclusive {
		how = lockEx
	}
	if err := m.lockMaster(how); err != nil {
		return err
	}
	defer m.unlockMaster()
	if err := m.reg.refresh(m.dirFD); err != nil {
		return err
	}
	return m.guard(func() error {
		v, err := m.reg.view()
		if err != nil {
			return err
		}
		if exclusive {
			if err := m.reg.recover(v); err != nil {
				return err
			}
		}
		return fn(v)
	})
}

func (m *Manager) errID(id, capacity uint32) error {
	return fmt.Errorf("lock %d in %s: capacity is %d: %w", id, m.dir, capacity, lock.ErrInvalidID)
}

// change sets (alloc) or clears the bit of the ID that pick chooses.
func (m *Manager) change(alloc bool, pick func(v *view) (uint32, error)) (uint32, error) {
	var id uint32
	err := m.withRegistry(true, func(v *view) error {
		var err error
		if id, err = pick(v); err != nil {
			return err
		}
		if id >= v.capacity {
			return m.errID(id, v.capacity)
		}
		cur, err := v.page(id / bitsPerPage)
		if err != nil {
			return wrapPath(err, m.reg.path)
		}
		old := m.reg.oldPage[:]
		copy(old, cur)
		p, err := v.updatePage(m.reg.newPage[:], id, alloc, v.maxSeq()+1)
		switch {
		case errors.Is(err, errAlreadySet):
			return fmt.Errorf("lock %d in %s: %w", id, m.dir, lock.ErrAllocated)
		case errors.Is(err, errAlreadyClear):
			return fmt.Errorf("free lock %d in %s: %w", id, m.dir, lock.ErrNotAllocated)
		case err != nil:
			return wrapPath(err, m.reg.path)
		}
		return m.reg.commit(id/bitsPerPage, old, p)
	})
	return id, err
}

// AllocateLock allocates the lowest free ID and returns its lock, a
// *Locker. When every lock is allocated it fails with an error matching
// lock.ErrNoFreeLocks.
func (m *Manager) AllocateLock() (lock.Locker, error) {
	id, err := m.change(true, func(v *view) (uint32, error) {
		id, ok, err := v.lowestFree()
		if err != nil {
			return 0, wrapPath(err, m.reg.path)
		}
		if !ok {
			return 0, fmt.Errorf("allocate lock in %s: all %d locks are allocated; free unused locks, or raise the capacity with Resize (lockdir resize N): %w", m.dir, v.capacity, lock.ErrNoFreeLocks)
		}
		return id, nil
	})
	if err != nil {
		return nil, err
	}
	return m.locker(id), nil
}

// AllocateAndRetrieveLock allocates the lock with the given ID and returns
// it, a *Locker. It fails with an error matching lock.ErrAllocated if the
// lock is already allocated, and lock.ErrInvalidID if id is not below the
// capacity.
func (m *Manager) AllocateAndRetrieveLock(id uint32) (lock.Locker, error) {
	if _, err := m.change(true, func(*view) (uint32, error) { return id, nil }); err != nil {
		return nil, err
	}
	return m.locker(id), nil
}

// free clears id's allocation.
func (m *Manager) free(id uint32) error {
	_, err := m.change(false, func(*view) (uint32, error) { return id, nil })
	return err
}

// RetrieveLock returns the lock with the given ID, a *Locker, whether or not
// it is allocated; retrieving does not allocate. It fails with an error
// matching lock.ErrInvalidID if id is not below the capacity.
func (m *Manager) RetrieveLock(id uint32) (lock.Locker, error) {
	err := m.withRegistry(false, func(v *view) error {
		if id >= v.capacity {
			return m.errID(id, v.capacity)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m.locker(id), nil
}

// FreeAllLocks marks every lock unallocated, replacing the registry
// atomically. It changes allocation state only: locks that are held stay
// held, and lock files stay in place. Read lock.Manager's warning first: it
// is meant for tests and renumbering.
func (m *Manager) FreeAllLocks() error {
	return m.withRegistry(true, func(v *view) error {
		return m.reg.replace(m.dirFD, newRegistry(v.capacity, nil))
	})
}

// Resize changes the capacity to numLocks, keeping every allocation.
// Growing always works. Shrinking works only if no allocated ID is numLocks
// or above; otherwise it fails, naming those IDs, with an error matching
// lock.ErrAllocated. Lock files of IDs beyond a shrunken capacity are left
// in place. The registry is replaced atomically.
func (m *Manager) Resize(numLocks uint32) error {
	if err := checkCapacity(numLocks); err != nil {
		return fmt.Errorf("resize %s: %w", m.dir, err)
	}
	return m.withRegistry(true, func(v *view) error {
		if numLocks == v.capacity {
			return nil
		}
		ids, err := v.allocatedIDs()
		if err != nil {
			return wrapPath(err, m.reg.path)
		}
		var over []uint32
		for _, id := range ids {
			if id >= numLocks {
				over = append(over, id)
			}
		}
		if len(over) > 0 {
			return fmt.Errorf("resize %s from %d to %d locks: %d allocated IDs are %d or above (%s); free them first: %w",
				m.dir, v.capacity, numLocks, len(over), numLocks, formatIDs(over, 10), lock.ErrAllocated)
		}
		return m.reg.replace(m.dirFD, newRegistry(numLocks, ids))
	})
}

// formatIDs lists ids, eliding all but the first n.
func formatIDs(ids []uint32, n int) string {
	var b []byte
	for i, id := range ids {
		if i == n {
			b = fmt.Appendf(b, " and %d more", len(ids)-n)
			break
		}
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendUint(b, uint64(id), 10)
	}
	return string(b)
}

// AvailableLocks returns how many locks can still be allocated: the
// capacity minus the allocated count. It is never nil.
func (m *Manager) AvailableLocks() (*uint32, error) {
	var n uint32
	err := m.withRegistry(false, func(v *view) error {
		c, err := v.allocatedCount()
		if err != nil {
			return wrapPath(err, m.reg.path)
		}
		n = v.capacity - c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// Capacity returns how many locks the directory has room for.
func (m *Manager) Capacity() (uint32, error) {
	var n uint32
	err := m.withRegistry(false, func(v *view) error {
		n = v.capacity
		return nil
	})
	return n, err
}

// Allocated returns the allocated IDs in ascending order.
func (m *Manager) Allocated() ([]uint32, error) {
	var ids []uint32
	err := m.withRegistry(false, func(v *view) error {
		var err error
		ids, err = v.allocatedIDs()
		return wrapPath(err, m.reg.path)
	})
	return ids, err
}

// Dir returns the lock directory.
func (m *Manager) Dir() string { return m.dir }

// LockPath returns the file that holds the lock with the given ID. A shell
// script takes the same lock as a Go program with flock(1) on this file:
//
//	flock "$(lockdir path 7)" command
//
// The file is created on the lock's first use and never removed while the
// directory is in use.
func (m *Manager) LockPath(id uint32) string {
	return filepath.Join(m.dir, locksName, strconv.FormatUint(uint64(id), 10))
}

// LockFile returns LockPath(id) after creating the file if it is missing,
// with the directory's documented mode and group, so that a shell script's
// flock(1) does not create it with its umask's mode instead. It fails with
// an error matching lock.ErrInvalidID if id is not below the capacity. It
// neither allocates nor locks the lock.
func (m *Manager) LockFile(id uint32) (string, error) {
	if _, err := m.RetrieveLock(id); err != nil {
		return "", err
	}
	path := m.LockPath(id)
	c := &m.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locksFD < 0 {
		return "", fmt.Errorf("lock %d in %s: %w", id, m.dir, lock.ErrClosed)
	}
	fd, err := m.openOrCreateAt(c.locksFD, strconv.FormatUint(uint64(id), 10), oRDONLY)
	if err != nil {
		return "", &fs.PathError{Op: "open", Path: path, Err: explainOpenFile(err)}
	}
	defer closeFD(fd)
	if err := m.checkLockFile(fd); err != nil {
		return "", &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return path, nil
}

// Close releases the Manager's descriptors and mapping. Locks held through
// it stay held until their Unlock, which then closes their descriptor; any
// other use of its Lockers afterwards panics (Lock, TryLock) or returns
// lock.ErrClosed. Close is idempotent.
func (m *Manager) Close() error {
	m.regMu.Lock()
	defer m.regMu.Unlock()
	if m.closed.Swap(true) {
		return nil
	}
	err := m.reg.close()
	m.cache.close()
	for _, fd := range []*int{&m.masterFD, &m.dirFD} {
		if *fd >= 0 {
			err = errors.Join(err, closeFD(*fd))
			*fd = -1
		}
	}
	return err
}

// locker returns a Locker for id, sharing the in-process state of every
// other Locker for id from this Manager.
func (m *Manager) locker(id uint32) *Locker {
	return &Locker{m: m, st: m.state(id)}
}

func (m *Manager) state(id uint32) *lockState {
	m.statesMu.Lock()
	defer m.statesMu.Unlock()
	if st := m.states[id].Value(); st != nil {
		return st
	}
	st := newLockState(id)
	m.states[id] = weak.Make(st)
	// Forget the entry once no Locker (and no cached descriptor) refers to
	// the state any more, so that touching many IDs costs no lasting memory.
	runtime.AddCleanup(st, m.forget, id)
	return st
}

func (m *Manager) forget(id uint32) {
	m.statesMu.Lock()
	defer m.statesMu.Unlock()
	if m.states[id].Value() == nil {
		delete(m.states, id)
	}
}
