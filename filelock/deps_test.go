package filelock_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoHeavyDependencies keeps what the library and the CLI link small
// (issue 12): a program that imports filelock, and lockdir itself, must not
// pull in net/http, crypto/x509 or golang.org/x/text (afero's root package
// brought all three, adding megabytes and milliseconds of start-up), nor
// afero itself, whose Fs the registry's fault seam used to be; nor cgo
// (os/user brought it), which makes the binary dynamic and adds the C
// library's start-up to every run of lockdir.
func TestNoHeavyDependencies(t *testing.T) {
	t.Parallel()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	forbidden := []string{
		"net/http",
		"crypto/x509",
		"golang.org/x/text",
		"vendor/golang.org/x/text", // the standard library's copy
		"github.com/spf13/afero",
		"runtime/cgo",
		"os/user",
		"net",
	}
	for _, pkg := range []string{"github.com/lockdir/lockdir/filelock", "github.com/lockdir/lockdir/internal/cli", "github.com/lockdir/lockdir/cmd/lockdir"} {
		// Non-test builds: go list without -test.
		out, err := exec.Command(goCmd, "list", "-deps", pkg).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %v", pkg, deps)
		}
		for _, dep := range deps {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
