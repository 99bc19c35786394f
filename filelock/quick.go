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
// it always does.
//
// It checks the lock directory, locks/ and the lock file as Open and
// OpenLockFile do, each on the descriptor it goes on to use, and creates
// the lock file in the same way if it is missing. What it skips is the
// registry's upkeep: it takes no master lock, maps nothing and checks no
// bitmap page, but reads the registry's header for the capacity. The
// header is written once, when the registry is made, and a registry is
// only ever replaced whole, by a rename, so the header needs no lock; and
// with Open, too, the capacity can change after the master lock is let go
// and before the lock file is opened. A lock directory with anything out
// of the ordinary (missing, or without a registry or locks/ yet, with a
// damaged header, an ID beyond the capacity, a file or directory that
// fails a check, an error of any kind) is left to the long way.
//
// In 'lockdir lock -- true' the long way was about a tenth of the whole
// run (issue 12); see docs/performance.md.
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

// quickCapacity reads the capacity from the header of the registry in
// dirFD, which it checks as Open does, and whose size must be the one the
// header implies.
func (m *Manager) quickCapacity(dirFD int) (uint32, error) {
	fd, err := openAt(dirFD, registryName, oRDONLY, 0)
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
	var h [headerLen]byte
	if err := preadFull(fd, h[:], 0); err != nil {
		return 0, err
	}
	capacity, err := parseHeader(h[:])
	if err != nil {
		return 0, err
	}
	if fi.size != registrySize(capacity) {
		return 0, corruptf("registry is %d bytes, want %d for capacity %d", fi.size, registrySize(capacity), capacity)
	}
	return capacity, nil
}
