// Package filelock is a lock.Manager that keeps its locks in a directory of
// files: every lock ID is a file locked with flock(2), and a registry file
// records which IDs are allocated. It needs no shared memory, so it works
// for rootless users, in minimal containers, and wherever /dev/shm is
// unusable.
//
// A lock excludes other goroutines (through the same Locker or another),
// other Managers in the same process, other processes, and shell scripts
// that run flock(1) on Manager.LockPath. When a holder dies, even by
// SIGKILL, the kernel releases its lock at once.
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
// LockContext with a cancellable context polls rather than waits in the
// kernel, because a flock(2) wait cannot be interrupted; it may notice a
// release up to 2 ms late.
//
// Holders and LocksHeld read /proc/locks and work only on Linux.
package filelock
