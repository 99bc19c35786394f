package filelock_test

import (
	"os"
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
// library's start-up to every run of lockdir. On amd64, where lockdir sums
// CRC-32C with its own use of the CPU's instruction (crc_amd64.s), neither
// may link hash/crc32 either: without it 'lockdir lock' starts about 2%
// faster (docs/performance.md, "Round six").
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
		checkDeps(t, goCmd, pkg, "", forbidden)
		checkDeps(t, goCmd, pkg, "amd64", []string{"hash/crc32"})
	}
}

// checkDeps checks that pkg, built for goarch (or the host's if empty),
// depends on none of the packages forbidden, nor on any below them.
func checkDeps(t *testing.T, goCmd, pkg, goarch string, forbidden []string) {
	t.Helper()
	// Non-test builds: go list without -test.
	list := exec.Command(goCmd, "list", "-deps", pkg)
	if goarch != "" {
		list.Env = append(os.Environ(), "GOARCH="+goarch)
	}
	out, err := list.Output()
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
				t.Errorf("%s (GOARCH %q) depends on %s", pkg, goarch, dep)
			}
		}
	}
}
