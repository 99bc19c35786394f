// Package cli is the lockdir command: cmd/lockdir's main calls Run, and so
// does the etcd-enabled build's (etcdlock/cmd/lockdir), which adds a
// Cluster. docs/cli.md documents the command.
//
// # Files
//
// cli.go runs the command line: the command table, global flags and usage;
// exit.go holds the exit codes and turns errors into messages with advice;
// stack.go grows the stack once at the start, where it is cheap. dir.go
// finds and opens the directory, with owner_*.go (file owners); group.go
// resolves --group; ids.go parses lock IDs and checks them against the
// capacity. admin.go holds init, alloc, free, free-all, resize and path;
// status.go status, with proc.go (what /proc says of holders and waiters);
// version.go version; and quit.go the quiet exit on SIGQUIT. lock is
// lock_cmd.go (the command), lockflags.go (flock(1)'s flags), lock_unix.go
// (taking the lock), child_unix.go (running the command, signals and job
// control) and cpupin_linux.go (its threads on one CPU, its command's
// affinity as lockdir's was; cpupin_other.go elsewhere), or lock_other.go
// where flock(2) is missing. check is check.go
// (the command and its result), check_workers.go (the parent's side of its
// processes), check_worker.go (one process), check_counter.go (the file
// they count in), check_record.go (the record in it of the ID a check
// allocated, which the next check frees if this one was killed),
// check_flock_unix.go or check_flock_other.go (opening and locking that
// file), and check_linux.go or check_other.go (the filesystem's type and
// the terminal). On a cluster: cluster.go holds the Cluster and Space
// interfaces and the flags that select one, cluster_admin.go the
// administration commands and status there, and cluster_lock_unix.go (or
// cluster_lock_other.go) lock there.
package cli
