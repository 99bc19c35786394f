// Command lockdir manages multiprocess locks kept in a directory of files,
// one flock(2)-locked file per numbered lock, as implemented by package
// github.com/lockdir/lockdir/filelock. Shell scripts and Go programs that
// use the same directory share the same locks.
//
// Install it with
//
//	go install github.com/lockdir/lockdir/cmd/lockdir@latest
//
// Usage:
//
//	lockdir [--dir DIR] COMMAND [ARGS...]
//
// The commands are init, alloc, free, free-all, resize, path, status, lock,
// check and version; 'lockdir COMMAND -h' describes each. The directory is the first
// of --dir, $LOCKDIR_DIR, $XDG_RUNTIME_DIR/lockdir for a non-root user,
// /run/lockdir for root, and lockdir-UID in the temporary directory for a
// non-root user without $XDG_RUNTIME_DIR. 'lockdir --version' prints the
// version; lockdir(1) (docs/lockdir.1) is the manual page.
//
// A shell script takes the same lock as a Go program with flock(1):
//
//	flock "$(lockdir path 7)" some-command
//
// or with lockdir itself:
//
//	lockdir lock 7 -- some-command
//
// 'lockdir check' tests that flock(2) excludes processes on the directory's
// filesystem. Exit codes, the JSON schemas of 'status --json' and
// 'check --json', and the exact semantics of lock are documented in
// docs/cli.md.
//
// # Files
//
// main.go and cli.go run the command line: the command table, global flags
// and usage; exit.go holds the exit codes and turns errors into messages
// with advice. dir.go finds and opens the directory, with owner_*.go (file
// owners); group.go resolves --group; ids.go parses lock IDs and checks
// them against the capacity. admin.go holds init, alloc, free, free-all,
// resize and path; status.go status, with proc.go (what /proc says of
// holders and waiters); version.go version; and quit.go the quiet exit on
// SIGQUIT. lock is lock_cmd.go (the command), lockflags.go (flock(1)'s
// flags), lock_unix.go (taking the lock) and child_unix.go (running the
// command, signals and job control), or lock_other.go where flock(2) is
// missing. check is check.go (the command and its result), check_workers.go
// (the parent's side of its processes), check_worker.go (one process),
// check_counter.go (the file they count in) and check_linux.go or
// check_other.go (the filesystem's type and the terminal).
package main
