package filelock

import (
	"errors"
	"io/fs"
)

// regFile is an open registry file, or the temporary file that replaces
// it, as filelock writes it. fdFile, a raw descriptor, satisfies it, and so
// would an *os.File.
type regFile interface {
	WriteAt(b []byte, off int64) (int, error)
	Sync() error
	Close() error
	Fd() uintptr // for mmap, fstat, fchmod and fchown
}

// dirFS is every file operation a Manager makes on its registry after it
// has opened the lock directory. Each is relative to the directory's
// descriptor, or made on a file's descriptor: no path is resolved from the
// working directory, so a Manager acts on the directory it opened even
// after a chdir, or after the directory was moved and another put at its
// path (issue 7, defect 1). Tests wrap it to inject faults (faultfs_test.go).
type dirFS interface {
	// OpenAt opens name in dirfd, never following a final symlink.
	OpenAt(dirfd int, name string, flags int, perm uint32) (regFile, error)
	// RenameAt renames from in fromfd to to in tofd.
	RenameAt(fromfd int, from string, tofd int, to string) error
	// UnlinkAt removes name from dirfd; a symlink is removed, not followed.
	UnlinkAt(dirfd int, name string) error
	// MkdirAt makes the directory name in dirfd; RmdirAt removes it.
	MkdirAt(dirfd int, name string, perm uint32) error
	RmdirAt(dirfd int, name string) error
	// SyncDir fsyncs the directory dirfd, making a rename in it durable.
	SyncDir(dirfd int) error
	// Fchmod sets the mode of f, Fchown its group.
	Fchmod(f regFile, perm uint32) error
	Fchown(f regFile, gid int) error
	// LstatAt stats name in dirfd without following a symlink; Fstat
	// stats f. They tell whether the registry was replaced.
	LstatAt(dirfd int, name string) (fileInfo, error)
	Fstat(f regFile) (fileInfo, error)
}

// osFS is dirFS on the system calls of sys_*.go.
type osFS struct{}

func (osFS) OpenAt(dirfd int, name string, flags int, perm uint32) (regFile, error) {
	fd, err := openAt(dirfd, name, flags, perm)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &fdFile{fd: fd, name: name}, nil
}

func (osFS) RenameAt(fromfd int, from string, tofd int, to string) error {
	if err := renameAt(fromfd, from, tofd, to); err != nil {
		return &fs.PathError{Op: "rename", Path: from, Err: err}
	}
	return nil
}

func (osFS) MkdirAt(dirfd int, name string, perm uint32) error {
	if err := mkdirAt(dirfd, name, perm); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return nil
}

func (osFS) RmdirAt(dirfd int, name string) error {
	if err := rmdirAt(dirfd, name); err != nil {
		return &fs.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}

func (osFS) UnlinkAt(dirfd int, name string) error {
	if err := unlinkAt(dirfd, name); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

func (osFS) SyncDir(dirfd int) error {
	if err := fsync(dirfd); err != nil {
		return &fs.PathError{Op: "sync", Path: ".", Err: err}
	}
	return nil
}

func (osFS) Fchmod(f regFile, perm uint32) error {
	if err := fchmod(int(f.Fd()), perm); err != nil {
		return &fs.PathError{Op: "chmod", Path: fileName(f), Err: err}
	}
	return nil
}

func (osFS) Fchown(f regFile, gid int) error {
	if err := fchown(int(f.Fd()), -1, gid); err != nil {
		return &fs.PathError{Op: "chown", Path: fileName(f), Err: err}
	}
	return nil
}

func (osFS) LstatAt(dirfd int, name string) (fileInfo, error) {
	fi, err := lstatAt(dirfd, name)
	if err != nil {
		return fi, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fi, nil
}

func (osFS) Fstat(f regFile) (fileInfo, error) {
	fi, err := fstat(int(f.Fd()))
	if err != nil {
		return fi, &fs.PathError{Op: "fstat", Path: fileName(f), Err: err}
	}
	return fi, nil
}

func fileName(f regFile) string {
	if n, ok := f.(interface{ Name() string }); ok {
		return n.Name()
	}
	return "?"
}

// fdFile is a regFile on a raw descriptor. It spares the registry
// os.File's poller registration (an fcntl and an epoll_ctl per open) and
// keeps the write path to one pwrite.
type fdFile struct {
	fd   int
	name string // relative to the lock directory, for errors
}

var errFileClosed = errors.New("file already closed")

func (f *fdFile) Name() string { return f.name }
func (f *fdFile) Fd() uintptr  { return uintptr(f.fd) }

func (f *fdFile) WriteAt(b []byte, off int64) (int, error) {
	if f.fd < 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: errFileClosed}
	}
	n, err := pwrite(f.fd, b, off)
	if err != nil {
		return n, &fs.PathError{Op: "write", Path: f.name, Err: err}
	}
	return n, nil
}

func (f *fdFile) Sync() error {
	if f.fd < 0 {
		return &fs.PathError{Op: "sync", Path: f.name, Err: errFileClosed}
	}
	if err := fsync(f.fd); err != nil {
		return &fs.PathError{Op: "sync", Path: f.name, Err: err}
	}
	return nil
}

// Close closes the descriptor. A failed close(2) still frees it, so it is
// never retried.
func (f *fdFile) Close() error {
	if f.fd < 0 {
		return &fs.PathError{Op: "close", Path: f.name, Err: errFileClosed}
	}
	err := closeFD(f.fd)
	f.fd = -1
	if err != nil {
		return &fs.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}
