// Package clitest holds what the lockdir command's test scripts share,
// for both builds: internal/cli's tests (the plain lockdir) and
// etcdlock/cmd/lockdir's (the etcd-enabled one). exitcode.go is the
// scripts' exitcode command.
package clitest

import (
	"errors"
	"os/exec"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"
)

// ExitCode implements the test scripts' "exitcode N program [args...]": it
// runs the program like exec and checks that it exits with status N. The
// program's stdout and stderr are then checked with stdout and stderr as
// usual.
func ExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}
