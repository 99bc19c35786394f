//go:build unix

package childproc_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/internal/childproc"
)

// orphanRole starts a grandchild, sleep(1), that inherits its standard
// output, as a child that runs a command (flock(1), a helper daemon of a
// lock.Manager under test) would; prints "ready PID" with the
// grandchild's process ID, and waits for the end of its input.
func orphanRole() {
	cmd := exec.Command("sleep", "60")
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("ready", cmd.Process.Pid)
	var b [1]byte
	os.Stdin.Read(b[:])
}

// TestChildKilledWithGrandchild is a review3 finding: Child reaps its
// child only after reading its standard output to the end, so a
// grandchild that inherited that output keeps Exited, Err, Wait and the
// test's clean-up (Kill, then <-exited) waiting for as long as the
// grandchild lives, although the child itself is dead. The children
// filelock's tests had before (startChild with a pipe of its own and
// cmd.Wait beside the reading) were reaped at once, and torture's were
// never waited for in clean-up. Here the grandchild sleeps 60 s; the test
// gives the killed child 5 s to be reported exited, then kills the
// grandchild itself so as not to hang.
func TestChildKilledWithGrandchild(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("needs sleep(1)")
	}
	c := childproc.Start(t, childproc.Spec{Role: "childproc/orphan"})
	line := c.Next(10 * time.Second)
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "ready "))
	if err != nil {
		t.Fatalf("child printed %q, want \"ready PID\"", line)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Exited():
	case <-time.After(5 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		<-c.Exited()
		t.Errorf("%v was killed, but Exited was not closed within 5s: it waited for the grandchild that holds its standard output", c)
	}
}

// orphanPrintRole starts a grandchild, sleep(1), that inherits its
// standard output and error; prints "pid PID" with the grandchild's
// process ID, then orphanLines numbered lines, more than a pipe holds,
// then "the end" to its standard error, and exits with status 0.
func orphanPrintRole() {
	cmd := exec.Command("sleep", "60")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("pid", cmd.Process.Pid)
	for i := range orphanLines {
		fmt.Printf("%d %s\n", i, strings.Repeat("x", 100))
	}
	fmt.Fprintln(os.Stderr, "the end")
}

const orphanLines = 2000 // 2000 × 106 bytes: more than a 64 KiB pipe

// TestChildExitsWithGrandchild checks that a child that exits on its own
// while a grandchild holds its standard output and error open is reaped
// at once, with status 0, and that everything it wrote before it exited
// is read: the lines still in the pipe when it died, and its standard
// error.
func TestChildExitsWithGrandchild(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("needs sleep(1)")
	}
	c := childproc.Start(t, childproc.Spec{Role: "childproc/orphanprint"})
	line := c.Next(10 * time.Second)
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "pid "))
	if err != nil {
		t.Fatalf("child printed %q, want \"pid PID\"", line)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	// Without the grandchild's pipes this returns at once; with them held
	// it must too: 10 s is patience, the grandchild lives 60 s.
	c.Wait(10 * time.Second)
	for i := range orphanLines {
		want := fmt.Sprintf("%d %s", i, strings.Repeat("x", 100))
		if got := c.Next(0); got != want {
			t.Fatalf("line %d after exit = %.20q, want %.20q", i, got, want)
		}
	}
	if got := c.Stderr(); got != "the end\n" {
		t.Errorf("stderr after exit = %q, want \"the end\\n\"", got)
	}
}
