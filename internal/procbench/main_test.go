//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as the cold benchmarks' child, as the
// procbench binary does.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	// A binary built with -race sleeps for a second as it exits
	// (atexit_sleep_ms defaults to 1000), which would make the smoke
	// tests' dozens of children take a minute under make test.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	os.Exit(m.Run())
}

// countLines fails the test unless out has exactly want lines matching each
// pattern.
func countLines(t *testing.T, out string, want int, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		re := regexp.MustCompile("(?m)" + p)
		if got := len(re.FindAllString(out, -1)); got != want {
			t.Errorf("%d lines match %s, want %d; output:\n%s", got, p, want, out)
		}
	}
}

// TestColdSmoke runs the cold benchmarks with tiny N, so that the harness
// cannot rot: every variant runs, checks its work and prints benchstat
// lines, and the summary has its ratios.
func TestColdSmoke(t *testing.T) {
	var out bytes.Buffer
	if err := runCold(&out, coldConfig{dir: t.TempDir(), sizes: []int{3, 5}, rounds: 2, extra: true}); err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, n := range []int{3, 5} {
		for _, b := range []string{"ColdTouch", "ColdCreate"} {
			impls := []string{"baseline", "lockdir"}
			if b == "ColdTouch" {
				impls = append(impls, "lockdir-max40", "lockdir-pregrow", "baseline-keep")
			}
			for _, impl := range impls {
				patterns = append(patterns, fmt.Sprintf(`^Benchmark%s/N=%d/impl=%s 1 \d+ ns/op \d+ cpu-ns/op \d+ inproc-ns/op$`, b, n, impl))
			}
			patterns = append(patterns, fmt.Sprintf(`^Benchmark%s/N=%d/impl=noop 1 \d+ ns/op \d+ cpu-ns/op$`, b, n))
		}
	}
	countLines(t, out.String(), 2, patterns...)
	countLines(t, out.String(), 4,
		`^# ratio Cold\w+/N=\d+ lockdir / baseline: wall \S+x .* cpu \S+x .* inproc \S+x`,
		`^# ratio Cold\w+/N=\d+ \(lockdir - noop\) / \(baseline - noop\): wall `)
}

// TestCLISmoke builds the CLI benchmark's programs and runs one round.
func TestCLISmoke(t *testing.T) {
	var out bytes.Buffer
	if err := runCLI(&out, cliConfig{dir: t.TempDir(), rounds: 1}); err != nil {
		t.Fatal(err)
	}
	impls := []string{"go-floor", "go-afero", "go-signals", "go-forkexec", "go-forkexec-signals", "lockdir"}
	if _, err := exec.LookPath("flock"); err == nil {
		impls = append(impls, "flock")
	}
	var patterns []string
	for _, impl := range impls {
		patterns = append(patterns, `^BenchmarkCLI/impl=`+impl+` 1 \d+ ns/op \d+ cpu-ns/op$`)
	}
	countLines(t, out.String(), 1, patterns...)
	countLines(t, out.String(), 1, `^# ratio CLI lockdir / go-floor: wall `, `^# ratio CLI lockdir / go-signals: wall `, `^# ratio CLI lockdir / go-forkexec-signals: wall `, `^# size lockdir: \d+ bytes`, `^# size go-afero \(minexecafero\): \d+ bytes`)
}

// TestChildFailure checks that a child that fails or skips work fails the
// benchmark instead of giving a fast sample.
func TestChildFailure(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &coldConfig{self: self}
	missing := t.TempDir() + "/missing"
	for _, tc := range []struct {
		name string
		v    variant
		want string
	}{
		{"exit status", variant{name: "x", command: c.child("touch-lockdir", missing, 3)}, "exit status 2"},
		{"unknown role", variant{name: "x", command: c.child("no-such-role", missing, 3)}, "unknown role"},
		{"fewer IDs", variant{name: "x", command: c.child("touch-files", t.TempDir(), 0), after: checkIDs(3)}, "child did 0 IDs, want 3"},
		{"no count", variant{name: "x", command: c.child("noop", "", 0), after: checkIDs(3)}, "did not say"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestSetup checks that procbench setup prepares directories that its
// children then work on.
func TestSetup(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runSetup(&out, t.TempDir()+"/cold", 3); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("setup printed %d lines, want 6:\n%s", len(lines), out.String())
	}
	for _, line := range lines {
		env := strings.Fields(line)
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), env...)
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if !strings.Contains(line, "=noop ") {
			if err := checkIDs(3)(string(got)); err != nil {
				t.Errorf("%s: %v", line, err)
			}
		}
	}
}

// TestRealtime checks that -fifo runs each child under chrt -f 1 with its
// own arguments.
func TestRealtime(t *testing.T) {
	if _, err := exec.LookPath("chrt"); err != nil {
		t.Skip(err)
	}
	groups := []group{{name: "G", variants: []variant{{name: "v", command: func() *exec.Cmd { return exec.Command("/bin/echo", "a", "b") }}}}}
	if err := realtime(groups); err != nil {
		t.Fatal(err)
	}
	cmd := groups[0].variants[0].command()
	if got, want := strings.Join(cmd.Args, " "), "chrt -f 1 /bin/echo a b"; got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	if filepath.Base(cmd.Path) != "chrt" {
		t.Errorf("path %q, want chrt", cmd.Path)
	}
}

// TestCLICopies checks that copied makes files of their own with the same
// bytes, and that each variant's runs take its copies in turn.
func TestCLICopies(t *testing.T) {
	dir := t.TempDir()
	var b cliBinaries
	for i, p := range []*string{&b.lockdir, &b.minexec, &b.minexecAfero, &b.minexecSig, &b.minForkExec} {
		*p = filepath.Join(dir, fmt.Sprintf("bin%d", i))
		if err := os.WriteFile(*p, []byte(*p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c, err := b.copied(3)
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{b.lockdir, b.minexec, b.minexecAfero, b.minexecSig, b.minForkExec} {
		paths := c[bin]
		if len(paths) != 3 || paths[0] != bin {
			t.Fatalf("copies %v, want 3", paths)
		}
		want, err := os.ReadFile(paths[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths[1:] {
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, want) || p == paths[0] {
				t.Errorf("copy %s of %s: %q, %v", p, paths[0], got, err)
			}
		}
	}
	g := cliGroup(io.Discard, b, c, nil, filepath.Join(dir, "flockfile"))
	for _, v := range g.variants {
		if v.name == "flock" {
			continue
		}
		var seen []string
		for range 4 {
			seen = append(seen, v.command().Path)
		}
		if seen[0] == seen[1] || seen[1] == seen[2] || seen[0] == seen[2] || seen[3] != seen[0] {
			t.Errorf("%s ran %v, want three copies in turn", v.name, seen)
		}
	}
}
