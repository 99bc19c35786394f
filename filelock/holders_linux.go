package filelock

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// procLocks is the kernel's table of file locks. Tests point it elsewhere.
var procLocks = "/proc/locks"

// procLock is one FLOCK entry of /proc/locks.
type procLock struct {
	ino       uint64
	pid       int
	exclusive bool
	waiting   bool // a process blocked in flock(2), not a holder
}

// readProcLocks returns the FLOCK entries of /proc/locks on the device
// dev, holders and waiters alike.
//
// /proc/locks names a file by device and inode. Devices are matched too,
// except that btrfs and overlayfs report a device number in stat(2) that
// differs from the one in /proc/locks; see docs/design.md.
//
// The kernel writes /proc/locks a buffer (a page) at a time, each under its
// lock, and finds its place again by position: when the table changes
// between two reads, an entry can be skipped or come twice. So the table
// is read until two reads in a row agree, at most procLocksReads times;
// if the table keeps changing, the union of what was read is returned,
// and a lock taken or released meanwhile may still be missing or shown.
// (TestHolders, beside parallel tests taking locks, saw both.)
func readProcLocks(dev uint64) ([]procLock, error) {
	var all, last []procLock
	for range procLocksReads {
		ls, err := readProcLocksOnce(dev)
		if err != nil {
			return nil, err
		}
		if last != nil && slices.Equal(ls, last) {
			return ls, nil
		}
		all = append(all, ls...)
		last = ls
	}
	slices.SortFunc(all, func(a, b procLock) int {
		return cmp.Or(cmp.Compare(a.ino, b.ino), cmp.Compare(a.pid, b.pid), cmpBool(a.exclusive, b.exclusive), cmpBool(a.waiting, b.waiting))
	})
	return slices.Compact(all), nil
}

// procLocksReads bounds how often readProcLocks reads the table.
const procLocksReads = 4

// readProcLocksOnce is one read of /proc/locks, parsed.
func readProcLocksOnce(dev uint64) ([]procLock, error) {
	data, err := os.ReadFile(procLocks)
	if err != nil {
		return nil, err
	}
	wantDev := procLocksDev(dev)
	var ls []procLock
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"; a waiter
		// has "->" after the number: "1: -> FLOCK  ADVISORY  WRITE ...".
		f := bytes.Fields(sc.Bytes())
		waiting := len(f) > 1 && string(f[1]) == "->"
		if waiting {
			f = f[1:]
		}
		if len(f) < 6 || string(f[1]) != "FLOCK" {
			continue
		}
		// f[5] is "maj:min:ino", major and minor in hex.
		i := bytes.LastIndexByte(f[5], ':')
		if i < 0 || string(f[5][:i+1]) != wantDev {
			continue
		}
		n, err := strconv.ParseUint(string(f[5][i+1:]), 10, 64)
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(string(f[4]))
		ls = append(ls, procLock{ino: n, pid: pid, exclusive: string(f[3]) == "WRITE", waiting: waiting})
	}
	return ls, nil
}

// lockTable matches the FLOCK entries of /proc/locks against the inodes of
// the lock files, which it reads from the locks directory without stat'ing
// each file. It returns the holders and the waiters of IDs below limit:
// the capacity for Holders and Waiters, MaxLocks for LockUsers.
func (m *Manager) lockTable(limit uint32) (holders, waiters []Holder, err error) {
	locksDir := filepath.Join(m.dir, locksName)
	dirInfo, err := lstatAt(m.dirFD, locksName)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "stat", Path: locksDir, Err: err}
	}
	ls, err := readProcLocks(dirInfo.dev)
	if err != nil {
		return nil, nil, err
	}
	if len(ls) == 0 {
		return nil, nil, nil
	}
	byIno := map[uint64][]procLock{}
	for _, l := range ls {
		byIno[l.ino] = append(byIno[l.ino], l)
	}
	err = m.readLocksDir(func(ino uint64, name []byte) {
		es, ok := byIno[ino]
		if !ok {
			return
		}
		id, err := strconv.ParseUint(string(name), 10, 32)
		if err != nil || id >= uint64(limit) || string(name) != lockName(uint32(id)) {
			return
		}
		for _, e := range es {
			h := Holder{ID: uint32(id), PID: e.pid, Exclusive: e.exclusive}
			if e.waiting {
				waiters = append(waiters, h)
			} else {
				holders = append(holders, h)
			}
		}
	})
	return holders, waiters, err
}

// heldLocks returns the holders of IDs below capacity; see lockTable.
func (m *Manager) heldLocks(capacity uint32) ([]Holder, error) {
	hs, _, err := m.lockTable(capacity)
	return hs, err
}

// waitingLocks returns the waiters of IDs below capacity; see lockTable.
func (m *Manager) waitingLocks(capacity uint32) ([]Holder, error) {
	_, ws, err := m.lockTable(capacity)
	return ws, err
}

// readLocksDir calls fn with the inode and name of every entry of locks/.
func (m *Manager) readLocksDir(fn func(ino uint64, name []byte)) error {
	locksDir := filepath.Join(m.dir, locksName)
	fd, err := openAt(m.dirFD, locksName, oRDONLY|oDIRECTORY, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: locksDir, Err: err}
	}
	defer closeFD(fd)
	buf := make([]byte, 64<<10)
	for {
		n, err := getdents(fd, buf)
		if err != nil {
			return &fs.PathError{Op: "readdir", Path: locksDir, Err: err}
		}
		if n <= 0 {
			return nil
		}
		parseDirents(buf[:n], direntOrder, fn)
	}
}

// parseDirents calls fn with the inode and name of each struct
// linux_dirent64 in b (ino u64, off s64, reclen u16, type u8, then the
// NUL-terminated name), whose integers are in byte order order. It stops
// at a truncated or malformed record.
func parseDirents(b []byte, order binary.ByteOrder, fn func(ino uint64, name []byte)) {
	for len(b) >= 19 {
		ino := order.Uint64(b[0:])
		reclen := int(order.Uint16(b[16:]))
		if reclen < 19 || reclen > len(b) {
			return
		}
		name := b[19:reclen]
		if j := bytes.IndexByte(name, 0); j >= 0 {
			name = name[:j]
		}
		b = b[reclen:]
		fn(ino, name)
	}
}
