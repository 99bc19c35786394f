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
// main.go calls internal/cli, which holds the command's code, so that the
// etcd-enabled build (github.com/lockdir/lockdir/etcdlock/cmd/lockdir) runs
// the same code; internal/cli's package comment names its files.
package main
