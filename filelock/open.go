package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

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
	if o.maxOpen == 0 {
		o.maxOpen = defaultMaxOpen()
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
		cache:    fdCache{max: o.maxOpen, locksFD: -1, epoch: time.Now()},
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

func (m *Manager) setup(mode openMode, numLocks uint32) error {
	if mode != modeOpen {
		if err := os.MkdirAll(filepath.Dir(m.dir), 0o755); err != nil {
			return err
		}
		if err := m.makeDir(atFDCWD, m.dir); err != nil {
			return &fs.PathError{Op: "mkdir", Path: m.dir, Err: err}
		}
	}
	fd, err := m.openDir(atFDCWD, m.dir)
	if err != nil {
		return &fs.PathError{Op: "open", Path: m.dir, Err: explainOpenDir(atFDCWD, m.dir, err)}
	}
	m.dirFD = fd
	if err := m.checkOwnedSettling(fd, true); err != nil {
		return &fs.PathError{Op: "open", Path: m.dir, Err: err}
	}

	// Decide whether this directory may be opened or made a lock directory
	// before writing anything to it, so that a refused directory is left
	// exactly as it was (issue 7, defect 6). The decision is made again
	// under the master lock below, since another process may be creating
	// the registry meanwhile.
	exists, err := m.registryExists(mode)
	if err != nil {
		return err
	}
	if exists && mode == modeCreate {
		return &fs.PathError{Op: "create", Path: m.reg.path, Err: fs.ErrExist}
	}

	// The master lock file is created once and never replaced, so that
	// every process always locks the same inode. It is the first file a
	// new lock directory gets; Open creates it too if the registry exists,
	// since a registry is useless without it.
	if err := m.openMaster(); err != nil {
		return err
	}

	if err := m.lockMaster(lockEx); err != nil {
		return err
	}
	defer m.unlockMaster()

	exists, err = m.registryExists(mode)
	switch {
	case err != nil:
		return err
	case exists && mode == modeCreate:
		return &fs.PathError{Op: "create", Path: m.reg.path, Err: fs.ErrExist}
	case exists:
		if err := m.reg.refresh(m.dirFD); err != nil {
			return err
		}
	default:
		// The registry comes after registry.lock and before locks/, so
		// that a directory with locks/ and no registry can only be one
		// that lost its registry (see registryExists).
		if err := m.reg.replace(m.dirFD, newRegistry(numLocks, nil)); err != nil {
			return err
		}
	}
	// Only now is the directory known to be a lock directory: a refused
	// one keeps even files that look like lockdir's leftovers.
	m.cleanLeftovers()
	if err := m.checkOwned(int(m.reg.f.Fd()), false); err != nil {
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
		m.capacity.Store(v.capacity)
		return m.reg.recover(v)
	})
	if err != nil {
		return err
	}
	return m.setupLocksDir()
}

// registryExists reports whether the directory has a registry, and if it
// has none, whether mode may create one there: nil means a new lock
// directory, for which the caller creates the registry; an error, a
// directory to refuse, untouched.
//
// A lock directory is created in this order: registry.lock; the staging
// directory and registry.tmp in it; registry, renamed from there, and the
// directory fsynced; locks/. So locks/ without a registry means a
// directory that was in use and has lost its registry, and with it every
// allocation (issue 7, defect 7): Open and OpenOrCreate refuse it with
// lock.ErrCorrupt rather than hand out IDs that running programs may hold.
// Only Create, the operator's explicit "start over", makes a new registry
// there. A Create killed before locks/ leaves a directory that is either
// fresh (no registry: Open says fs.ErrNotExist, and OpenOrCreate and Create
// create it) or complete but for locks/, which opening creates.
//
// setup calls it twice: first without the master lock, to refuse a
// directory before writing to it, and then under it. Without the lock,
// another process may be creating the directory meanwhile; since it makes
// the registry before locks/, the registry is looked for again after
// locks/ is seen, and a registry that appeared in between is not lost.
func (m *Manager) registryExists(mode openMode) (bool, error) {
	_, err := m.reg.fs.LstatAt(m.dirFD, registryName)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, inDir(err, m.dir)
	}
	_, err = m.reg.fs.LstatAt(m.dirFD, locksName)
	inUse := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, inDir(err, m.dir)
	}
	if inUse {
		if _, err := m.reg.fs.LstatAt(m.dirFD, registryName); err == nil {
			return true, nil
		}
	}
	switch {
	case inUse && mode != modeCreate:
		return false, &fs.PathError{Op: "open", Path: m.reg.path, Err: corruptf(
			"registry is missing, but %s/ shows the directory was in use: every allocation is lost. "+
				"To start over with an empty registry, stop the programs that use it and run 'lockdir init' (Create), "+
				"then re-allocate the IDs in use with AllocateAndRetrieveLock", locksName)}
	case mode == modeOpen:
		return false, &fs.PathError{Op: "open", Path: m.reg.path, Err: fs.ErrNotExist}
	}
	return false, m.checkEmpty()
}

// checkEmpty refuses to turn a directory that holds anything but lockdir's
// own files into a lock directory: a mistyped path should not scatter
// lock files among someone's documents.
func (m *Manager) checkEmpty() error {
	names, err := readDirNames(m.dirFD, m.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		switch name {
		case registryName, masterName, tmpName, locksName:
			// registry: made by a concurrent OpenOrCreate since the
			// caller looked; the check under the master lock finds it.
		default:
			if isTempName(name) {
				// A creator's temporary, published or left by a
				// crash (publish.go).
				continue
			}
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

// readDirNames lists the directory dirfd, named path in errors. It reads
// through a new descriptor for "." in dirfd, not by path, so that it lists
// the directory this Manager opened.
func readDirNames(dirfd int, path string) ([]string, error) {
	fd, err := openAt(dirfd, ".", oRDONLY|oDIRECTORY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	return f.Readdirnames(-1)
}

func (m *Manager) setupLocksDir() error {
	fd, err := m.openLocksDir()
	if err != nil {
		return err
	}
	m.cache.locksFD = fd
	registerCache(&m.cache)
	return nil
}

// openLocksDir opens locks/, creating it if need be, and checks it.
func (m *Manager) openLocksDir() (int, error) {
	path := filepath.Join(m.dir, locksName)
	if err := m.makeDir(m.dirFD, locksName); err != nil {
		return -1, &fs.PathError{Op: "mkdir", Path: path, Err: err}
	}
	fd, err := m.openDir(m.dirFD, locksName)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: explainOpenDir(m.dirFD, locksName, err)}
	}
	if err := m.checkOwnedSettling(fd, true); err != nil {
		closeFD(fd)
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}
