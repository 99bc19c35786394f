// Package etcdlock implements the lock.Manager contract on an etcd cluster,
// so that numbered locks exclude processes on different machines as
// filelock's exclude processes on one.
//
// A Manager is a lock space: the keys under one prefix in etcd. Allocation
// state is a set of free-range keys, changed by one transaction per call and
// atomic across clients. Each lock ID is a mutex in the manner of etcd's
// concurrency.Mutex: a holder puts a key bound to its session lease, and the
// key with the lowest create revision holds the lock. The lease is kept
// alive while the process lives; when it dies, the lease expires within the
// TTL (see WithTTL) and the lock passes on.
//
// Because a lease can also expire under a live holder (a partition, a long
// pause, etcd out of reach), every Locker reports the loss through Lost, and
// every acquisition carries a fencing token, Token, that strictly increases
// per lock ID, for a storage service to reject writes from a stale holder.
// docs/etcd.md shows the pattern.
//
// # Files
//
// open.go opens or creates a lock space (New) and refuses foreign or
// overlapping prefixes; options.go holds the Options; keys.go is the key
// layout, the only code that knows it; alloc.go allocates and frees IDs
// through the free ranges, in one transaction each; manager.go is the rest
// of the Manager API and the per-ID state between goroutines; space.go
// tells that the lock space is still the one New opened; locker.go is
// the Locker; mutex.go the etcd side of one lock (concurrency.Mutex's
// algorithm, with a watch on the key just ahead); session.go grants the
// session lease that every held lock is bound to; keepalive.go keeps it
// alive and tells its loss, on a deadline of its own; holders.go lists
// holders and waiters by host and PID, for lockdir status.
package etcdlock
