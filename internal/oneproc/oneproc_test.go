package oneproc

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestOneP checks that importing the package leaves one P: this test
// binary imports it.
func TestOneP(t *testing.T) {
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("GOMAXPROCS is %d with oneproc imported, want 1", n)
	}
}

// TestInitFirst checks what the package comment promises of lockdir's
// binaries: that oneproc's init runs before that of any package that
// allocates, as GODEBUG=inittrace=1 shows (a package's line is printed
// when its init is done, in the order they ran).
func TestInitFirst(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build lockdir with")
	}
	bin := filepath.Join(t.TempDir(), "lockdir")
	build := exec.Command(goCmd, "build", "-o", bin, "github.com/lockdir/lockdir/cmd/lockdir")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lockdir version: %v\n%s", err, stderr.Bytes())
	}
	const self = "github.com/lockdir/lockdir/internal/oneproc"
	var before []string
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		// init PKG @T ms, T ms clock, B bytes, N allocs
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] != "init" {
			continue
		}
		pkg, bytes := f[1], f[7]
		if pkg == self {
			t.Logf("inits before oneproc's: %v", before)
			return
		}
		if pkg != "runtime" && bytes != "0" {
			t.Errorf("%s's init allocated %s bytes before oneproc's init ran", pkg, bytes)
		}
		before = append(before, pkg)
	}
	t.Fatalf("no init line for %s in lockdir's GODEBUG=inittrace=1 output:\n%s", self, stderr.String())
}
