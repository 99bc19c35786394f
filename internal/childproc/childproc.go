// Package childproc starts the child processes of lockdir's tests: the
// running test binary, re-executed to play a role. It is shared by the
// tests of filelock, lock/locktest and internal/torture, so that every
// child is started the same way:
//
//   - the binary is os.Args[0] (or a copy other users can run) with
//     -test.run selecting no test, so that TestMain dispatches the role, or
//     the one test that plays it;
//   - the role is named in $LOCKDIR_CHILD as "namespace/name", so that one
//     binary can hold the roles of several packages (filelock's own and the
//     conformance suite's) without one dispatcher taking another's child;
//   - arguments go in as JSON in $LOCKDIR_CHILD_ARGS, and a result comes
//     out as a JSON line on standard output (Reply, Result);
//   - a binary built with -race does not sleep a second at exit
//     (GORACE=atexit_sleep_ms=0).
//
// Files: childproc.go builds a child's command and plays the child's side;
// child.go is a running child that talks to its test line by line (Start),
// the one used by filelock, lock/locktest and internal/torture;
// pipe.go (with pipe_unix.go, pipe_other.go) reads a child's output to its
// end, or only to what is in the pipe once the child is dead, so that a
// grandchild holding the pipe open does not keep a dead child from being
// reported; scope.go is a Scope, the clean-ups of one round of a test's
// loop, run at the end of the round; recorder.go is a Recorder, the
// testing.TB that records failures for the tests of helpers that fail
// their test; syncbuffer.go is the stderr buffer that the parent reads while
// the child writes; killed_unix.go tells a SIGKILL apart from other deaths;
// user_linux.go makes the throwaway users, and the directory and copy of the
// binary they can reach, that multi-user tests run children as; tty_linux.go
// starts a child in a session of its own, plants a terminal at a file's name
// and tells whether the child acquired it as its controlling terminal, and
// holds both sides of such a test (WithPlantedTerminal, RunPlanted).
package childproc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The environment variables that carry a child's role and arguments.
const (
	RoleEnv = "LOCKDIR_CHILD"
	ArgsEnv = "LOCKDIR_CHILD_ARGS"
)

// A Spec describes a child process.
type Spec struct {
	// Role is "namespace/name", read back in the child by Role(namespace).
	Role string
	// Args, if not nil, is JSON-encoded for the child to decode with Args.
	Args any
	// Exe is the binary to run; "" means the running test binary.
	Exe string
	// Run is the -test.run pattern; "" means "^$", no test at all, for
	// roles that TestMain dispatches.
	Run string
	// Flags are further command-line arguments, after -test.run.
	Flags []string
	// Env holds further environment variables, NAME=value.
	Env []string
	// Dir is the child's working directory; "" means the parent's.
	Dir string
	// SysProcAttr, if not nil, is the child's: its credentials, for one.
	SysProcAttr *syscall.SysProcAttr
	// Grace is how long Start's clean-up lets the child of a passing test
	// exit on its own once its input is closed, before it kills it; 0
	// kills it at once.
	Grace time.Duration
}

// Command returns the command that starts the child s describes, not yet
// started, so that the caller can set up its standard streams. It fails t
// if the arguments do not encode.
func Command(t testing.TB, s Spec) *exec.Cmd {
	t.Helper()
	exe := s.Exe
	if exe == "" {
		exe = os.Args[0]
	}
	run := s.Run
	if run == "" {
		run = "^$"
	}
	var args []byte
	if s.Args != nil {
		var err error
		if args, err = json.Marshal(s.Args); err != nil {
			t.Fatalf("child %s: encoding its arguments: %v", s.Role, err)
		}
	}
	cmd := exec.Command(exe, append([]string{"-test.run=" + run, "-test.count=1"}, s.Flags...)...)
	// Both variables are always set, so that a child of a child does not
	// inherit its parent's role. Later entries win in exec.Cmd.Env.
	cmd.Env = append(os.Environ(), RoleEnv+"="+s.Role, ArgsEnv+"="+string(args))
	cmd.Env = append(cmd.Env, s.Env...)
	// A binary built with -race sleeps a second at exit by default.
	cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Dir = s.Dir
	cmd.SysProcAttr = s.SysProcAttr
	return cmd
}

// Role returns the name of the role this process was started to play in
// namespace ns, or "" if it is not such a child.
func Role(ns string) string {
	name, _ := strings.CutPrefix(os.Getenv(RoleEnv), ns+"/")
	if name == os.Getenv(RoleEnv) {
		return "" // another namespace's child, or none
	}
	return name
}

// Args decodes the child's arguments, given as Spec.Args, into v.
func Args(v any) error {
	s := os.Getenv(ArgsEnv)
	if s == "" {
		return errors.New("childproc: no arguments in $" + ArgsEnv)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("childproc: decoding $%s: %w", ArgsEnv, err)
	}
	return nil
}

// Reply writes the child's result v to standard output, as one JSON line.
func Reply(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}

// Result decodes into v the result that a child wrote with Reply, from its
// standard output out: the first line that decodes, since a test binary
// adds lines such as PASS around it.
func Result(out []byte, v any) error {
	for line := range bytes.Lines(out) {
		if bytes.HasPrefix(line, []byte("{")) && json.Unmarshal(line, v) == nil {
			return nil
		}
	}
	return errors.New("childproc: the child printed no result")
}
