package filelock

import "time"

// An Option configures Create, Open and OpenOrCreate.
type Option func(*options)

type options struct {
	maxOpen int           // idle lock fds kept open at most; 0 until defaulted
	fsync   bool          // fsync after every registry update
	gid     int           // shared group, or -1
	timeout time.Duration // wait for the master lock; 0 is forever
	fs      dirFS         // registry I/O; tests inject faults here
}

func defaultOptions() options {
	return options{gid: -1, fs: osFS{}}
}

// WithMaxOpenFiles bounds how many lock files a Manager keeps open while
// they are not locked. Reopening a lock file costs an open(2) on the next
// Lock, so the bound trades descriptors for speed. The default is half the
// process's descriptor limit, at least 1,024 and at most 65,536, so that a
// process touching thousands of locks once closes none of them.
// A held lock always keeps its descriptor, so a process holding more locks
// than n has more than n open. Values below 1 are treated as 1.
func WithMaxOpenFiles(n int) Option {
	return func(o *options) { o.maxOpen = max(n, 1) }
}

// WithFsync makes every registry update durable across power loss: the
// journal record and the page are each fsynced before the call returns. It
// is off by default because lock directories usually live on tmpfs (for
// example /run), which power loss empties anyway, and an fsync on a disk
// costs milliseconds. Without it, an update survives the death of any
// process but not of the machine. Creating, resizing and clearing the
// registry always fsync.
func WithFsync(on bool) Option {
	return func(o *options) { o.fsync = on }
}

// WithSharedGroup shares the lock directory with the members of group gid.
// A directory it creates gets mode 02770 and group gid, files get 0660, and
// an existing directory may be group-writable if its group is gid. Without
// it, the directory is private: mode 0700, files 0600, and a group- or
// world-writable directory is refused.
func WithSharedGroup(gid int) Option {
	return func(o *options) { o.gid = gid }
}

// WithTimeout bounds how long a registry operation (allocate, free, resize,
// and the queries) waits for the master lock that serializes them. Another
// process holds it only for microseconds, unless it is stopped or hung while
// holding it. The default, 0, waits forever. Lock, TryLock and LockContext
// never take the master lock and ignore the timeout.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// withFs routes registry file I/O through fsys, which tests use to inject
// faults. Its files must be backed by the OS (have a real Fd).
func withFs(fsys dirFS) Option {
	return func(o *options) { o.fs = fsys }
}
