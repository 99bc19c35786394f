package filelock

import (
	"os"
	"path/filepath"
)

// QuickOpenLockFile opens lock id's file in the lock directory dir, as
// OpenLockFile does on a Manager that Open(dir, opts...) returns, but the
// short way: for a program that needs that one file, once, and exits, such
// as 'lockdir lock'. ok is false, and f nil, whenever the short way does
// not apply; the caller then opens the directory with Open or OpenOrCreate
// and calls OpenLockFile, which create, repair, refuse or explain, each as
// it always does. It never takes a directory that Open would refuse.
//
// It checks what Open checks, each on the descriptor it goes on to use:
// the directory, registry.lock and the registry (each opened read-write,
// as Open opens them), the registry's header and every bitmap page,
// locks/ and the lock file, which it creates in the same way if it is
// missing. What it skips is the master lock and the registry's upkeep: it
// reads the registry instead of mapping it, redoes no journal record and
// cleans nothing up: a journal record still to redo (a writer stopped or
// killed between its two writes) is read through, as every reader reads
// it, and left to the next writer. Without the master lock a reader may
// catch a page in the middle of a write, which then fails its checksum:
// that, like anything else out of the ordinary (no directory, registry or
// locks/ yet, an ID beyond the capacity, a check that fails, an error of
// any kind), is left to the long way, untouched, but for one case: if the
// lock file was created and then could not be made blocking, it stays, as
// OpenLockFile would leave it. With Open, too, the capacity can change
// after the master lock is let go and before the lock file is opened.
//
// In 'lockdir lock 7 -- true' the long way was about a tenth of the run
// (issue 12); see docs/performance.md.
func QuickOpenLockFile(dir string, id uint32, opts ...Option) (f *os.File, ok bool) {
	if !supported || dir == "" {
		return nil, false
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if _, real := o.fs.(osFS); !real {
		return nil, false // a test's faults are injected on the long way
	}
	m := &Manager{dir: filepath.Clean(dir), opts: o, dirFD: -1, masterFD: -1}
	fd, err := m.quickOpen(id)
	if err != nil {
		return nil, false
	}
	f, err = m.lockFile(fd, id)
	return f, err == nil
}

// quickOpen is QuickOpenLockFile's way to a descriptor of lock id's file.
// m is a Manager for its options and its checks only, which holds the
// directory's descriptor in dirFD while quickOpen runs (creating a lock
// file in shared mode makes a temporary file there), and no other.
func (m *Manager) quickOpen(id uint32) (int, error) {
	dirFD, err := m.quickDir(atFDCWD, m.dir)
	if err != nil {
		return -1, err
	}
	m.dirFD = dirFD
	defer func() {
		closeFD(dirFD)
		m.dirFD = -1
	}()
	capacity, err := m.quickCapacity(dirFD)
	if err != nil {
		return -1, err
	}
	if id >= capacity {
		return -1, m.errID(id, capacity)
	}
	locksFD, err := m.quickDir(dirFD, locksName)
	if err != nil {
		return -1, err
	}
	defer closeFD(locksFD)
	return m.openLockFileAt(locksFD, id)
}

// quickDir opens the directory name in dirfd and checks it as Open does,
// but without waiting for a member's directory to settle.
func (m *Manager) quickDir(dirfd int, name string) (int, error) {
	fd, err := openAt(dirfd, name, oRDONLY|oDIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	if err := m.checkOwned(fd, true); err != nil {
		closeFD(fd)
		return -1, err
	}
	return fd, nil
}

// quickCapacity checks registry.lock and the registry in dirFD as Open
// does, and returns the capacity.
func (m *Manager) quickCapacity(dirFD int) (uint32, error) {
	if err := m.quickMaster(dirFD); err != nil {
		return 0, err
	}
	fd, err := openAt(dirFD, registryName, oRDWR, 0)
	if err != nil {
		return 0, err
	}
	defer closeFD(fd)
	fi, err := fstat(fd)
	if err != nil {
		return 0, err
	}
	if err := m.checkOwnedInfo(fi, false); err != nil {
		return 0, err
	}
	if err := checkRegistrySize(fi.size); err != nil {
		return 0, err
	}
	data := make([]byte, fi.size)
	if err := preadFull(fd, data, 0); err != nil {
		return 0, err
	}
	v, err := parseRegistry(data)
	if err == nil {
		err = v.verify()
	}
	if err != nil {
		return 0, err
	}
	return v.capacity, nil
}

// quickMaster checks registry.lock in dirFD as Open does, without creating
// or locking it.
func (m *Manager) quickMaster(dirFD int) error {
	fd, err := openAt(dirFD, masterName, lockFileFlags, 0)
	if err != nil {
		return err
	}
	defer closeFD(fd)
	// checkLockFile and checkOwned, on one fstat.
	fi, err := fstat(fd)
	if err != nil {
		return err
	}
	if err := checkLockFileInfo(fi); err != nil {
		return err
	}
	return m.checkOwnedInfo(fi, false)
}
