// Package filelock is a lock.Manager that keeps its locks in a directory of
// files: every lock ID is a file locked with flock(2), and a registry file
// records which IDs are allocated. It needs no shared memory, so it works
// for rootless users, in minimal containers, and wherever /dev/shm is
// unusable.
//
// A lock excludes other goroutines (through the same Locker or another),
// other Managers in the same process, other processes, and shell scripts
// that run flock(1) on Manager.LockPath. It can also be taken shared
// (Locker.RLock), like sync.RWMutex between goroutines and LOCK_SH
// (flock -s) between processes. When a holder dies, even by SIGKILL, the
// kernel releases its lock at once.
//
//	m, err := filelock.OpenOrCreate("/run/user/1000/lockdir", filelock.DefaultNumLocks)
//	l, err := m.AllocateLock()
//	l.Lock()
//	defer l.Unlock()
//
// # Layout
//
// A lock directory holds three things: registry, the allocation bitmap
// (specified in docs/format.md); registry.lock, an empty file whose flock
// serializes registry changes; and locks/, one empty file per lock ID,
// created on first use and never removed or replaced while the directory is
// in use, so that every holder of an ID always locks the same inode.
//
// Allocation state lives only in the registry: locking an ID neither
// allocates it nor needs it allocated, and freeing an ID leaves its lock
// usable.
//
// # Caveats
//
// Locks are not recursive. A goroutine that locks a lock it already holds
// deadlocks, as with sync.Mutex.
//
// flock(2) locks belong to an open file description. A process that forks
// without exec shares its held locks with the child; filelock opens every
// file with O_CLOEXEC, so an exec'd child, such as a container runtime,
// inherits none.
//
// On NFS, Linux emulates flock with POSIX byte-range locks, which the
// server arbitrates and which may be lost if the server or client restarts.
// CIFS may enforce locks as mandatory. Use a local file system (tmpfs is
// best); the lockdir CLI's check command tests one.
//
// A flock(2) wait cannot be interrupted, so LockContext and RLockContext
// with a context that can be cancelled wait in the kernel through a
// goroutine of their own, at most one per lock ID and Manager, which holds
// an OS thread while it waits. A caller whose context is done returns at
// once; its waiter stays in flock(2) until the lock is free, then hands the
// lock to the next caller in the process that wants it, or releases it.
// Meanwhile the lock may show in /proc/locks as wanted by this process.
//
// Shared locks (RLock) of one Manager share one flock: other processes see
// a single LOCK_SH, and while this process's readers hold it, more of its
// readers join without a system call, so a writer in another process waits
// until all of them are done, as with flock(2) itself.
//
// Holders and LocksHeld read /proc/locks and work only on Linux.
//
// # Files
//
// One concern per file (docs/design.md, "File map", says more): open.go
// opens and creates a directory, perm.go checks ownership and modes, and
// publish.go makes shared files appear whole; master.go holds the master
// lock around the registry; registry.go knows its format, crc.go computes
// its checksums, and registry_file.go and dirfs.go do its I/O; manager.go is the Manager API,
// locker.go the Locker, rwstate.go the per-ID state between goroutines and
// waiter.go the kernel waiter for contexts; fdcache.go and fdpool.go keep
// lock descriptors open; holders*.go and unlinked*.go read the kernel's
// lock table; explain.go explains failed opens; options.go is the Options;
// fileinfo.go is the part of stat(2) that filelock checks; and sys_*.go is
// the seam through which every system call goes.
package filelock
