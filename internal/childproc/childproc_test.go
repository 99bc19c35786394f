package childproc_test

import (
	"os"
	"strings"
	"testing"

	"github.com/lockdir/lockdir/internal/childproc"
)

type echoArgs struct{ Words []string }

type echoResult struct {
	Joined string
	Other  string // the role seen in another namespace, which must be ""
	GORACE string
}

func TestMain(m *testing.M) {
	if childproc.Role("childproc") == "echo" {
		var a echoArgs
		if err := childproc.Args(&a); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		childproc.Reply(echoResult{strings.Join(a.Words, " "), childproc.Role("other"), os.Getenv("GORACE")})
		os.Exit(0)
	}
	os.Exit(m.Run())
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
