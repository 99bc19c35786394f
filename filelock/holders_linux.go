package filelock

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// procLocks is the kernel's table of file locks. Tests point it elsewhere.
var procLocks = "/proc/locks"

// heldLocks matches the FLOCK entries of /proc/locks against the inodes of
// the lock files, which it reads from the locks directory without stat'ing
// each file.
//
// /proc/locks names a file by device and inode. Devices are matched too,
// except that btrfs and overlayfs report a device number in stat(2) that
// differs from the one in /proc/locks; see docs/design.md.
func (m *Manager) heldLocks(capacity uint32) ([]Holder, error) {
	type entry struct {
		pid       int
		exclusive bool
	}
	locksDir := filepath.Join(m.dir, locksName)
	dirInfo, err := lstatAt(m.dirFD, locksName)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: locksDir, Err: err}
	}
	data, err := os.ReadFile(procLocks)
	if err != nil {
		return nil, err
	}
	wantDev := procLocksDev(dirInfo.dev)
	byIno := map[uint64][]entry{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"; waiters
		// have "->" after the number and are skipped.
		f := bytes.Fields(sc.Bytes())
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
		byIno[n] = append(byIno[n], entry{pid: pid, exclusive: string(f[3]) == "WRITE"})
	}
	if len(byIno) == 0 {
		return nil, nil
	}
	fd, err := openAt(m.dirFD, locksName, oRDONLY|oDIRECTORY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: locksDir, Err: err}
	}
	defer closeFD(fd)
	var hs []Holder
	buf := make([]byte, 64<<10)
	for {
		n, err := getdents(fd, buf)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: locksDir, Err: err}
		}
		if n <= 0 {
			break
		}
		parseDirents(buf[:n], direntOrder, func(ino uint64, name []byte) {
			es, ok := byIno[ino]
			if !ok {
				return
			}
			id, err := strconv.ParseUint(string(name), 10, 32)
			if err != nil || id >= uint64(capacity) || string(name) != strconv.FormatUint(id, 10) {
				return
			}
			for _, e := range es {
				hs = append(hs, Holder{ID: uint32(id), PID: e.pid, Exclusive: e.exclusive})
			}
		})
	}
	return hs, nil
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
