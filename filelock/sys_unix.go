//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"io"
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// This file holds every system call filelock makes. The registry's I/O
// reaches its calls through dirFS (dirfs.go), so that tests can inject
// faults. The rest of the package is portable; sys_other.go stubs these out
// where flock(2) is missing.

const supported = true

const (
	lockEx = unix.LOCK_EX
	lockSh = unix.LOCK_SH
	lockUn = unix.LOCK_UN
	lockNB = unix.LOCK_NB
)

// flock applies or removes an advisory flock(2) lock on fd.
//
// flock locks belong to the open file description, not to the process: two
// descriptors from two open calls exclude each other even in one process,
// and a lock is released only when its description's last descriptor is
// closed (or the process dies). That is why filelock uses flock rather than
// POSIX fcntl locks, which any close of any descriptor for the file drops.
// The call is retried on EINTR.
func flock(fd int, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}

// isWouldBlock reports whether err is flock's answer to LOCK_NB on a held lock.
func isWouldBlock(err error) bool {
	return err == unix.EWOULDBLOCK || err == unix.EAGAIN
}

// isTooManyFiles reports whether err says the process or system is out of
// file descriptors.
func isTooManyFiles(err error) bool {
	return err == unix.EMFILE || err == unix.ENFILE
}

// The portable file types in fileinfo.go are the S_IFMT values; a mismatch
// here fails to compile (an array of nonzero length is not a [0]struct{}).
var (
	_ [0]struct{} = [unix.S_IFDIR ^ typeDir]struct{}{}
	_ [0]struct{} = [unix.S_IFREG ^ typeReg]struct{}{}
	_ [0]struct{} = [unix.S_IFLNK ^ typeLink]struct{}{}
)

// toFileInfo converts the system's stat structure to filelock's fileInfo.
func toFileInfo(st *unix.Stat_t) fileInfo {
	return fileInfo{
		dev:  uint64(st.Dev),
		ino:  uint64(st.Ino),
		mode: uint32(st.Mode) & 0o7777,
		typ:  uint32(st.Mode) & unix.S_IFMT,
		uid:  st.Uid,
		gid:  st.Gid,
		size: st.Size,
	}
}

// setBlocking clears O_NONBLOCK on fd, which openAt sets so that opening
// a planted FIFO cannot hang.
func setBlocking(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK)
	return err
}

func fstat(fd int) (fileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileInfo{}, err
	}
	return toFileInfo(&st), nil
}

// lstatAt stats name in the directory dirfd without following a final
// symlink.
func lstatAt(dirfd int, name string) (fileInfo, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fileInfo{}, err
		}
		return toFileInfo(&st), nil
	}
}

// openAt opens name in the directory dirfd (or a path, with dirfd
// unix.AT_FDCWD). It never follows a final symlink, never blocks on a FIFO,
// never leaks into exec'd children, and never makes a terminal planted at
// the name the process's controlling terminal: on Linux a session leader
// without one (a daemon, a service, `setsid lockdir ...`) acquires any tty
// it opens without O_NOCTTY, before fstat can refuse the file. The BSDs and
// darwin acquire one only through TIOCSCTTY, and ignore the flag.
func openAt(dirfd int, name string, flags int, perm uint32) (int, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	for {
		fd, err := unix.Openat(dirfd, name, flags, perm)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

const (
	oRDONLY    = unix.O_RDONLY
	oCREAT     = unix.O_CREAT
	oEXCL      = unix.O_EXCL
	oDIRECTORY = unix.O_DIRECTORY
	atFDCWD    = unix.AT_FDCWD
)

func mkdirAt(dirfd int, name string, perm uint32) error {
	return unix.Mkdirat(dirfd, name, perm)
}

func fchmod(fd int, perm uint32) error { return unix.Fchmod(fd, perm) }

func fchown(fd int, uid, gid int) error { return unix.Fchown(fd, uid, gid) }

func closeFD(fd int) error { return unix.Close(fd) }

func geteuid() int { return unix.Geteuid() }

// mmapRead maps size bytes of fd read-only and shared, so that the mapping
// sees every write any process makes to the file.
func mmapRead(fd int, size int) ([]byte, error) {
	return unix.Mmap(fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
}

func munmap(b []byte) error { return unix.Munmap(b) }

// preadFull reads len(b) bytes of fd from offset off: all of them, or an
// error (io.ErrUnexpectedEOF if the file ends first).
func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return io.ErrUnexpectedEOF
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// isSymlinkErr reports whether err is how open(2) with O_NOFOLLOW refuses a
// symbolic link: ELOOP, or EMLINK on FreeBSD and DragonFly.
func isSymlinkErr(err error) bool { return err == unix.ELOOP || err == unix.EMLINK }

func isNotDirErr(err error) bool { return err == unix.ENOTDIR }

// fileLimit returns the process's soft limit on open descriptors.
func fileLimit() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	// RLIM_INFINITY is the largest uint64 on Linux and negative where Cur
	// is an int64 (FreeBSD): either way, no limit.
	if int64(rl.Cur) < 0 {
		return math.MaxUint64, nil
	}
	return uint64(rl.Cur), nil
}

// The calls below are the registry's I/O, reached through dirFS (dirfs.go)
// so that tests can inject faults. Every one is relative to a descriptor.

func renameAt(fromfd int, from string, tofd int, to string) error {
	for {
		err := unix.Renameat(fromfd, from, tofd, to)
		if err != unix.EINTR {
			return err
		}
	}
}

// unlinkAt removes the file name in dirfd; a symlink is removed, not
// followed.
func unlinkAt(dirfd int, name string) error {
	for {
		err := unix.Unlinkat(dirfd, name, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// rmdirAt removes the empty directory name in dirfd.
func rmdirAt(dirfd int, name string) error {
	for {
		err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		if err != unix.EINTR {
			return err
		}
	}
}

func fsync(fd int) error {
	for {
		err := unix.Fsync(fd)
		if err != unix.EINTR {
			return err
		}
	}
}

// pwrite writes all of b at off, as os.File.WriteAt does: a short write
// is continued, and the error, if any, says why it stopped.
func pwrite(fd int, b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		k, err := unix.Pwrite(fd, b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, unix.EIO
		}
		n += k
	}
	return n, nil
}

const (
	oRDWR   = unix.O_RDWR
	oWRONLY = unix.O_WRONLY
)

// What publish.go needs to put a file or directory in place under its
// final mode and group in one step.

// linkAt gives the file oldname in olddirfd a second name, newname in
// newdirfd, failing with EEXIST if newname exists. It never follows a
// symlink at oldname.
func linkAt(olddirfd int, oldname string, newdirfd int, newname string) error {
	return unix.Linkat(olddirfd, oldname, newdirfd, newname, 0)
}

// ctimeAt returns the status-change time of name in dirfd, not following
// a final symlink, and whether it is a directory.
func ctimeAt(dirfd int, name string) (ctime time.Time, isDir bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return time.Time{}, false, err
	}
	return time.Unix(st.Ctim.Unix()), st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// isLinkUnsupported reports whether err is linkat(2) saying that the file
// system has no hard links (or not between these two directories), as
// opposed to a name that is taken or gone.
func isLinkUnsupported(err error) bool {
	return err == unix.EPERM || err == unix.EOPNOTSUPP || err == unix.ENOTSUP || err == unix.EXDEV || err == unix.ENOSYS
}

// isNoReplaceUnsupported reports whether err is renameNoReplace saying
// that the kernel or the file system cannot rename without replacing.
func isNoReplaceUnsupported(err error) bool {
	return err == unix.ENOSYS || err == unix.EINVAL || err == unix.EOPNOTSUPP
}

// statFollow stats path, following symlinks: for /proc/PID/fd/N, the open
// file itself.
func statFollow(path string) (fileInfo, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileInfo{}, err
	}
	return toFileInfo(&st), nil
}
