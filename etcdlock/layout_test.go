package etcdlock_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilelockConsumerFreeOfEtcd makes a module that imports only filelock,
// with the repository root as its lockdir, and tidies it outside the
// workspace: its go.sum must name no go.etcd.io module. As a control, the
// same module importing etcdlock must name some, so the check can fail.
func TestFilelockConsumerFreeOfEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go mod tidy")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, imp string
		wantEtcd  bool
	}{
		{"filelock", "github.com/lockdir/lockdir/filelock", false},
		{"etcdlock", "github.com/lockdir/lockdir/etcdlock", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			gomod := "module example.com/consumer\n\ngo 1.26.0\n\n" +
				"require github.com/lockdir/lockdir v0.0.0-00010101000000-000000000000\n" +
				"replace github.com/lockdir/lockdir => " + root + "\n"
			if tc.wantEtcd {
				gomod += "require github.com/lockdir/lockdir/etcdlock v0.0.0-00010101000000-000000000000\n" +
					"replace github.com/lockdir/lockdir/etcdlock => " + filepath.Join(root, "etcdlock") + "\n"
			}
			main := "package main\n\nimport _ \"" + tc.imp + "\"\n\nfunc main() {}\n"
			write(t, filepath.Join(dir, "go.mod"), gomod)
			write(t, filepath.Join(dir, "main.go"), main)
			cmd := exec.Command(goBin, "mod", "tidy")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go mod tidy: %v\n%s", err, out)
			}
			sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(sum), "golang.org/x/sys") {
				t.Fatalf("go.sum lacks golang.org/x/sys, which filelock needs:\n%s", sum)
			}
			var etcd []string
			for line := range strings.Lines(string(sum)) {
				if strings.HasPrefix(line, "go.etcd.io/") {
					etcd = append(etcd, strings.TrimSpace(line))
				}
			}
			if got := len(etcd) > 0; got != tc.wantEtcd {
				t.Errorf("consumer importing %s: go.sum has %d go.etcd.io lines, want some: %v; lines: %q", tc.imp, len(etcd), tc.wantEtcd, etcd)
			}
		})
	}
}

func write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
