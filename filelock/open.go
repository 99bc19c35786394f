package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"weak"
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
	m.cleanLeftovers()

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
	fd, err = m.openOrCreateAt(m.dirFD, masterName, lockFileFlags)
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
		switch {
		case name == masterName, name == tmpName, name == locksName, isTempName(name):
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
	if err := m.makeDir(m.dirFD, locksName); err != nil {
		return &fs.PathError{Op: "mkdir", Path: path, Err: err}
	}
	fd, err := m.openDir(m.dirFD, locksName)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: explainOpenDir(m.dirFD, locksName, err)}
	}
	m.cache.locksFD = fd
	if err := m.checkOwnedSettling(fd, true); err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return nil
}
