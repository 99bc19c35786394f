package childproc_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lockdir/lockdir/internal/childproc"
)

type echoArgs struct{ Words []string }

type echoResult struct {
	Joined string
	Other  string // the role seen in another namespace, which must be ""
	GORACE string
}

func TestMain(m *testing.M) {
	switch childproc.Role("childproc") {
	case "":
		os.Exit(m.Run())
	case "echo":
		var a echoArgs
		if err := childproc.Args(&a); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		childproc.Reply(echoResult{strings.Join(a.Words, " "), childproc.Role("other"), os.Getenv("GORACE")})
	case "talk":
		// Print "ready", then echo every line of input, then "bye" at
		// its end.
		fmt.Println("ready")
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			fmt.Println(in.Text())
		}
		fmt.Println("bye")
	case "print":
		// Print two lines, the second without a newline, and exit.
		fmt.Print("one\ntwo")
	case "fail":
		fmt.Fprintln(os.Stderr, "the reason")
		os.Exit(3)
	case "closeout":
		// Close stdout, and live on until the end of input.
		os.Stdout.Close()
		io.Copy(io.Discard, os.Stdin)
	case "orphan":
		orphanRole()
	case "orphanprint":
		orphanPrintRole()
	}
	os.Exit(0)
}

// TestRoundTrip starts a child in a role, and checks that it reads its
// arguments, sees its role only in its own namespace, does not wait at
// exit under the race detector, and that its result comes back.
func TestRoundTrip(t *testing.T) {
	cmd := childproc.Command(t, childproc.Spec{Role: "childproc/echo", Args: echoArgs{[]string{"a", "b"}}})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var r echoResult
	if err := childproc.Result(out, &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if r.Joined != "a b" {
		t.Errorf("the child joined its arguments to %q, want \"a b\"", r.Joined)
	}
	if r.Other != "" {
		t.Errorf("the child sees role %q in another namespace, want none", r.Other)
	}
	if !strings.Contains(r.GORACE, "atexit_sleep_ms=0") {
		t.Errorf("the child's GORACE is %q, want it to hold atexit_sleep_ms=0", r.GORACE)
	}
}

// TestNotAChild checks that the test process itself plays no role, and
// that Result refuses output without one.
func TestNotAChild(t *testing.T) {
	if r := childproc.Role("childproc"); r != "" {
		t.Errorf("the test process plays role %q", r)
	}
	var r echoResult
	if err := childproc.Result([]byte("PASS\nok\n"), &r); err == nil {
		t.Error("Result found a result in output without one")
	}
}

// TestChildTalks holds a conversation with a child line by line: it
// prints, stays quiet while it waits for input, answers, and says goodbye
// at the end of its input.
func TestChildTalks(t *testing.T) {
	c := childproc.Start(t, childproc.Spec{Role: "childproc/talk"})
	c.Expect("ready", 10*time.Second)
	if !c.Quiet(50*time.Millisecond, "it waits for input") {
		t.Fatal("Quiet returned false for a child waiting for input")
	}
	c.Send("hello")
	c.Expect("hello", 10*time.Second)
	c.CloseStdin()
	if got := c.Next(10 * time.Second); got != "bye" {
		t.Errorf("after its input ended the child printed %q, want \"bye\"", got)
	}
	c.Wait(10 * time.Second)
	if err := c.Err(); err != nil {
		t.Errorf("Err of a child that exited with status 0 = %v", err)
	}
}

// TestChildOutputAfterExit checks that lines a child printed stay readable
// once it has exited, a last line without a newline included.
func TestChildOutputAfterExit(t *testing.T) {
	c := childproc.Start(t, childproc.Spec{Role: "childproc/print"})
	<-c.Exited()
	for _, want := range []string{"one", "two"} {
		if got := c.Next(0); got != want {
			t.Errorf("Next after exit = %q, want %q", got, want)
		}
	}
}

// TestChildFailures checks that a Child reports what goes wrong, with the
// child's standard error: a line that does not come or is not the one
// expected, output where there should be none, and an exit status other
// than 0.
func TestChildFailures(t *testing.T) {
	r := childproc.NewRecorder(t)
	talk := childproc.Start(r, childproc.Spec{Role: "childproc/talk"})
	fail := childproc.Start(r, childproc.Spec{Role: "childproc/fail"})
	closed := childproc.Start(r, childproc.Spec{Role: "childproc/closeout"})
	for _, tc := range []struct {
		name string
		fn   func()
		want string // in the one failure reported
	}{
		{"Expect of another line", func() { talk.Expect("hello", 10*time.Second) }, `printed "ready", want "hello"`},
		{"Next with nothing printed", func() { talk.Next(50 * time.Millisecond) }, "printed nothing within 50ms"},
		{"Quiet while it prints", func() { talk.Send("x"); talk.Quiet(10*time.Second, "it should not") }, `printed "x", but it should not`},
		{"Next after exit with no output", func() { fail.Next(10 * time.Second) }, "exited (exit status 3) with no more output; stderr:\nthe reason"},
		{"Next after its output closed, alive", func() { closed.Next(50 * time.Millisecond) }, "closed its output but did not exit within 50ms"},
		{"Quiet after exit", func() { fail.Quiet(10*time.Second, "it should live") }, "exited, but it should live"},
		{"Wait on exit status 3", func() {
			if fail.Wait(10 * time.Second) {
				t.Error("Wait on exit status 3 returned true")
			}
		}, "exit status 3; stderr:\nthe reason"},
	} {
		fails, _ := r.Run(tc.fn)
		if len(fails) != 1 || !strings.Contains(fails[0], tc.want) {
			t.Errorf("%s: reported %q, want one failure with %q", tc.name, fails, tc.want)
		}
	}
	ok := false
	if fails, _ := r.Run(func() { ok = talk.Wait(10 * time.Second) }); len(fails) != 0 || !ok {
		t.Errorf("Wait on a child that exited with status 0 returned %v and reported %q", ok, fails)
	}
}

// TestChildResult checks that a Child decodes the result its child wrote
// with Reply.
func TestChildResult(t *testing.T) {
	c := childproc.Start(t, childproc.Spec{Role: "childproc/echo", Args: echoArgs{[]string{"c", "d"}}})
	var r echoResult
	if err := c.Result(&r); err != nil {
		t.Fatal(err)
	}
	if r.Joined != "c d" {
		t.Errorf("the child joined its arguments to %q, want \"c d\"", r.Joined)
	}
}

// TestChildNoResult checks that when a child printed no result, Result's
// error holds what it printed, for the test's message.
func TestChildNoResult(t *testing.T) {
	c := childproc.Start(t, childproc.Spec{Role: "childproc/print"})
	var r echoResult
	err := c.Result(&r)
	if err == nil || !strings.Contains(err.Error(), "printed no result; stdout:\none\ntwo") {
		t.Errorf("Result of a child that printed \"one\\ntwo\" = %v, want an error with that output", err)
	}
}
