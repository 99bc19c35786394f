package childproc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// A Child is a running child process that talks to its test line by line:
// the test writes lines to its standard input (Send) and reads the lines of
// its standard output (Next, Expect, Quiet). Its output is read all the
// while into a queue without bound, so the child never blocks writing, and
// lines it printed before it exited can still be read after. A Child
// belongs to the test that started it: its methods fail that test, and
// must be called from its goroutine.
//
// The child is reaped as soon as it dies, apart from the reading of its
// output: a process it started (a grandchild) may hold its standard output
// and error open for long after. Once the child is dead, what is already
// in those pipes is read, and then the output ends, whoever still holds
// them.
type Child struct {
	t      testing.TB
	name   string // "child role (pid N)", for messages
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr SyncBuffer

	mu    sync.Mutex
	lines []string      // printed and not yet taken
	more  chan struct{} // holds a value when lines may have grown
	eof   bool          // standard output is closed: no more lines

	exited chan struct{} // closed once the child is reaped and its output read
	err    error         // Wait's result, once exited is closed
}

// Start starts the child s describes, with pipes for its standard input
// and output and its standard error kept for messages. At the end of the
// test its standard input is closed; if the test has not failed, it is
// given s.Grace to exit on its own; then it is killed, if still running,
// and reaped.
func Start(t testing.TB, s Spec) *Child {
	t.Helper()
	c := &Child{
		t:      t,
		cmd:    Command(t, s),
		more:   make(chan struct{}, 1),
		exited: make(chan struct{}),
	}
	// Pipes of our own for the output, not StdoutPipe or a Writer that
	// os/exec copies to: exec.Cmd.Wait waits for those to reach their
	// end, which a grandchild holding them open puts off for as long as
	// it lives, and would keep the dead child unreaped.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatalf("child %s: %v", s.Role, err)
	}
	stderr, stderrW, err := os.Pipe()
	if err == nil {
		c.stdin, err = c.cmd.StdinPipe()
	}
	if err == nil {
		c.cmd.Stdout, c.cmd.Stderr = stdoutW, stderrW
		err = c.cmd.Start()
	}
	// The child has its own copies of the write ends: once they close,
	// the read ends see the end of the output.
	for _, f := range []*os.File{stdoutW, stderrW} {
		if f != nil {
			f.Close()
		}
	}
	if err != nil {
		stdout.Close()
		if stderr != nil {
			stderr.Close()
		}
		t.Fatalf("starting child %s: %v", s.Role, err)
	}
	c.name = fmt.Sprintf("child %s (pid %d)", s.Role, c.cmd.Process.Pid)
	outDone, errDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(outDone)
		c.read(stdout)
	}()
	go func() {
		defer close(errDone)
		io.Copy(&c.stderr, &pipeReader{f: stderr})
	}()
	go c.reap([]*os.File{stdout, stderr}, outDone, errDone)
	t.Cleanup(func() {
		c.stdin.Close()
		if !t.Failed() && s.Grace > 0 {
			select {
			case <-c.exited:
			case <-time.After(s.Grace):
			}
		}
		c.cmd.Process.Kill()
		<-c.exited
	})
	return c
}

// reap waits for the child to die; then tells the readers of its pipes to
// stop at what the child wrote (a grandchild may hold the pipes open, so
// their end may be far off), waits for them, and closes the pipes.
func (c *Child) reap(pipes []*os.File, done ...chan struct{}) {
	err := c.cmd.Wait()
	for _, p := range pipes {
		stopAtEmpty(p)
	}
	for _, d := range done {
		<-d
	}
	for _, p := range pipes {
		p.Close()
	}
	c.err = err
	close(c.exited)
}

// read queues the lines of stdout until it ends.
func (c *Child) read(stdout *os.File) {
	r := bufio.NewReader(&pipeReader{f: stdout})
	for {
		s, err := r.ReadString('\n')
		if s != "" {
			c.mu.Lock()
			c.lines = append(c.lines, strings.TrimSuffix(s, "\n"))
			c.mu.Unlock()
			c.signal()
		}
		if err != nil {
			break
		}
	}
	c.mu.Lock()
	c.eof = true
	c.mu.Unlock()
	c.signal()
}

// signal wakes the reader of lines, if it waits.
func (c *Child) signal() {
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// take returns the next line, if one was printed, and whether the output
// has ended.
func (c *Child) take() (line string, ok, eof bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lines) > 0 {
		line = c.lines[0]
		c.lines = c.lines[1:]
		return line, true, false
	}
	return "", false, c.eof
}

// String names the child for messages: its role and process ID.
func (c *Child) String() string { return c.name }

// Pid returns the child's process ID.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Stderr returns what the child has written to its standard error so far.
func (c *Child) Stderr() string { return c.stderr.String() }

// await waits up to d for the child's next line, and returns it if it
// comes (ok), or whether its output ended first (eof).
func (c *Child) await(d time.Duration) (line string, ok, eof bool) {
	deadline := time.After(d)
	for {
		if line, ok, eof = c.take(); ok || eof {
			return line, ok, eof
		}
		select {
		case <-c.more:
		case <-deadline:
			return "", false, false
		}
	}
}

// Next returns the next line the child prints, without its newline. It
// stops the test if the child exits with no more lines, or prints none
// within timeout; a child that closed its output but does not exit within
// timeout either stops the test too, rather than hang it.
func (c *Child) Next(timeout time.Duration) string {
	c.t.Helper()
	line, ok, eof := c.await(timeout)
	switch {
	case eof:
		select {
		case <-c.exited:
		case <-time.After(timeout):
			c.t.Fatalf("%v closed its output but did not exit within %v; stderr:\n%s", c, timeout, c.Stderr())
		}
		c.t.Fatalf("%v exited (%v) with no more output; stderr:\n%s", c, c.err, c.Stderr())
	case !ok:
		c.t.Fatalf("%v printed nothing within %v; stderr:\n%s", c, timeout, c.Stderr())
	}
	return line
}

// Expect reads the next line the child prints, as Next does, and stops the
// test unless it is want.
func (c *Child) Expect(want string, timeout time.Duration) {
	c.t.Helper()
	if got := c.Next(timeout); got != want {
		c.t.Fatalf("%v printed %q, want %q; stderr:\n%s", c, got, want, c.Stderr())
	}
}

// Quiet reports whether the child prints nothing, and stays alive, for
// window. If it prints or exits, which it should not because of why, Quiet
// reports an error and returns false; a line it printed is taken.
func (c *Child) Quiet(window time.Duration, why string) bool {
	c.t.Helper()
	line, ok, eof := c.await(window)
	switch {
	case ok:
		c.t.Errorf("%v printed %q, but %s", c, line, why)
	case eof:
		c.t.Errorf("%v exited, but %s", c, why)
	}
	return !ok && !eof
}

// Send writes line and a newline to the child's standard input.
func (c *Child) Send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("writing to %v: %v", c, err)
	}
}

// CloseStdin closes the child's standard input: its end of input.
func (c *Child) CloseStdin() { c.stdin.Close() }

// Wait closes the child's standard input and waits for it to exit. It
// stops the test if the child is still running after timeout, and reports
// an error unless it exited with status 0; it returns whether it did.
// Lines it printed and nobody took stay queued, for Next and Result.
func (c *Child) Wait(timeout time.Duration) bool {
	c.t.Helper()
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		c.t.Fatalf("%v did not exit within %v; stderr:\n%s", c, timeout, c.Stderr())
	}
	if c.err != nil {
		c.t.Errorf("%v: %v; stderr:\n%s", c, c.err, c.Stderr())
		return false
	}
	return true
}

// Kill sends the child SIGKILL (on Windows, ends it), without waiting for
// it to die; Exited tells when it has.
func (c *Child) Kill() error { return c.cmd.Process.Kill() }

// Exited returns a channel that is closed once the child has exited and
// been reaped, and its output read: to its end, or, if a process the child
// started holds it open, as far as the child wrote.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// Result waits for the child to exit and decodes into v the result it
// wrote with Reply, from the lines nobody took, as Result does, and takes
// those lines. If there is no result, the error holds them.
func (c *Child) Result(v any) error {
	<-c.exited
	c.mu.Lock()
	out := strings.Join(c.lines, "\n")
	c.lines = nil
	c.mu.Unlock()
	if err := Result([]byte(out), v); err != nil {
		return fmt.Errorf("%v: %w; stdout:\n%s", c, err, out)
	}
	return nil
}

// Err waits for the child to exit and returns exec.Cmd.Wait's result: nil
// if it exited with status 0.
func (c *Child) Err() error {
	<-c.exited
	return c.err
}
