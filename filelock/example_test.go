//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

func Example() {
	tmp, err := os.MkdirTemp("", "lockdir-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	m, err := filelock.OpenOrCreate(filepath.Join(tmp, "locks"), filelock.DefaultNumLocks)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	l, err := m.AllocateLock()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("allocated lock", l.ID())

	l.Lock()
	// ... work that no other process may do at the same time ...
	l.Unlock()

	if err := l.Free(); err != nil {
		log.Fatal(err)
	}
	n, _ := m.AvailableLocks()
	fmt.Println("available:", *n)
	// Output:
	// allocated lock 0
	// available: 2048
}

func ExampleLocker_TryLock() {
	tmp, err := os.MkdirTemp("", "lockdir-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	m, err := filelock.Create(filepath.Join(tmp, "locks"), 16)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	la, _ := m.Retrieve(3)
	lb, _ := m.Retrieve(3)

	fmt.Println("first TryLock:", la.TryLock())
	fmt.Println("second TryLock:", lb.TryLock())

	// LockContext gives up when its context is done.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	fmt.Println("LockContext:", lb.LockContext(ctx))

	la.Unlock()
	fmt.Println("LockContext after Unlock:", lb.LockContext(context.Background()))
	lb.Unlock()
	// Output:
	// first TryLock: true
	// second TryLock: false
	// LockContext: context deadline exceeded
	// LockContext after Unlock: <nil>
}

func ExampleManager_LockPath() {
	flock, err := exec.LookPath("flock")
	if err != nil {
		fmt.Println("flock(1) exits with 1 while the lock is held")
		return // no util-linux here
	}
	tmp, err := os.MkdirTemp("", "lockdir-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	m, err := filelock.Create(filepath.Join(tmp, "locks"), 16)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	l, _ := m.RetrieveLock(7)
	l.Lock()
	// A shell script takes the same lock with flock(1) on LockPath.
	err = exec.Command(flock, "--nonblock", m.LockPath(7), "true").Run()
	if ee, ok := err.(*exec.ExitError); ok {
		fmt.Println("flock(1) exits with", ee.ExitCode(), "while the lock is held")
	}
	l.Unlock()
	// Output:
	// flock(1) exits with 1 while the lock is held
}

// Example_readme is the README's "Use it from Go" program, verbatim: its
// main function's body is this function's body (TestReadmeExample checks
// it), so the README's code compiles and runs as shown.
func Example_readme() {
	dir, err := os.MkdirTemp("", "locks") // or a fixed path, e.g. /run/myapp/locks
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	m, err := filelock.OpenOrCreate(dir, filelock.DefaultNumLocks)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	l, err := m.AllocateLock() // the lowest free ID
	if err != nil {
		log.Fatal(err) // errors.Is(err, lock.ErrNoFreeLocks) when all are taken
	}
	l.Lock()
	fmt.Println("holding lock", l.ID()) // l.ID() names this lock in every process
	l.Unlock()

	// The same lock as a shell script's flock "$(lockdir path 7)" ...
	l7, err := m.RetrieveLock(7)
	if err != nil {
		log.Fatal(err)
	}
	l7.Lock() // waits while the script's flock(1) holds it
	fmt.Println("holding lock", l7.ID())
	l7.Unlock()
	// Output:
	// holding lock 0
	// holding lock 7
}

// TestReadmeExample keeps the README's Go program and Example_readme the
// same: the body of the README's main must be Example_readme's body
// (without its Output comment), and the README's imports must be exactly
// those the body uses, which the Go build below checks by compiling the
// README's code as it stands.
func TestReadmeExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Use it from Go")
	if !ok {
		t.Fatal(`README.md has no "## Use it from Go" section`)
	}
	_, code, ok := strings.Cut(after, "```go\n")
	if ok {
		code, _, ok = strings.Cut(code, "```\n")
	}
	if !ok {
		t.Fatal("README.md: no ```go block in \"Use it from Go\"")
	}
	readmeBody := funcBody(t, "README.md", code, "main")

	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	exBody := funcBody(t, "example_test.go", string(src), "Example_readme")
	exBody, _, _ = strings.Cut(exBody, "\t// Output:")
	if strings.TrimSpace(readmeBody) != strings.TrimSpace(exBody) {
		t.Errorf("README.md's main and Example_readme differ:\n--- README.md\n%s\n--- Example_readme\n%s", readmeBody, exBody)
	}

	// Compile the README's program itself, as a package of this module
	// that exists only in an overlay.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to compile the README's program")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	mainGo := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(mainGo, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay := fmt.Sprintf(`{"Replace":{%q:%q}}`, filepath.Join(root, "internal", "readmeexample", "main.go"), mainGo)
	if err := os.WriteFile(filepath.Join(tmp, "overlay.json"), []byte(overlay), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool, "build", "-overlay", filepath.Join(tmp, "overlay.json"), "-o", filepath.Join(tmp, "readme"), "./internal/readmeexample")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the README's Go program does not build: %v\n%s", err, out)
	}
}

// funcBody returns the source between the braces of function name in src.
func funcBody(t *testing.T, file, src, name string) string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments)
	if err != nil {
		t.Fatalf("%s does not parse: %v", file, err)
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == name && fd.Recv == nil {
			start := fset.Position(fd.Body.Lbrace).Offset + 1
			end := fset.Position(fd.Body.Rbrace).Offset
			return src[start:end]
		}
	}
	t.Fatalf("%s: no func %s", file, name)
	return ""
}
