package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	info := func(version string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/lockdir/lockdir", Version: version}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"release", info("v1.2.0"), true, "v1.2.0"},
		{"checkout", info("(devel)", "vcs.revision", "1a2b3c4d5e6f7a8b9c0d", "vcs.time", "2026-12-01T18:00:00Z", "vcs.modified", "false"),
			true, "(devel) revision 1a2b3c4d5e6f 2026-12-01T18:00:00Z"},
		{"dirty", info("(devel)", "vcs.revision", "1a2b3c4d5e6f7a8b9c0d", "vcs.modified", "true"), true, "(devel) revision 1a2b3c4d5e6f+dirty"},
		{"pseudo-version", info("v0.0.0-20261201180000-1a2b3c4d5e6f", "vcs.revision", "1a2b3c4d5e6f7a8b9c0d"), true,
			"v0.0.0-20261201180000-1a2b3c4d5e6f revision 1a2b3c4d5e6f"},
		{"no vcs", info("(devel)"), true, "(devel), no VCS revision recorded"},
		{"no build info", nil, false, "(unknown version"},
	} {
		got := versionString(tc.bi, tc.ok)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: versionString = %q, want prefix %q", tc.name, got, tc.want)
		}
		if got == "(devel)" {
			t.Errorf("%s: a bare (devel)", tc.name)
		}
	}

	// make install's -X .../internal/cli.buildRevision, for builds without VCS stamps.
	defer func(old string) { buildRevision = old }(buildRevision)
	for rev, want := range map[string]string{
		"0123456789abcdef0123":       "(devel) revision 0123456789ab",
		"0123456789abcdef0123+dirty": "(devel) revision 0123456789ab+dirty",
	} {
		buildRevision = rev
		if got := versionString(info("(devel)"), true); got != want {
			t.Errorf("buildRevision %q: versionString = %q, want %q", rev, got, want)
		}
	}
}

// TestMakeInstall runs 'make install PREFIX=...' and checks what lands
// where, and that the installed binary names the checkout's revision.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds lockdir")
	}
	for _, tool := range []string{"make", "go", "git", "install"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	prefix := t.TempDir()
	cmd := exec.Command("make", "-C", root, "install", "PREFIX="+prefix)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"bin/lockdir", "share/man/man1/lockdir.1", "share/bash-completion/completions/lockdir"} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(filepath.Join(prefix, "bin/lockdir"), args...).Output()
		if err != nil {
			t.Fatalf("lockdir %s: %v", args[0], err)
		}
		if want := "revision " + strings.TrimSpace(string(rev))[:12]; !strings.Contains(string(out), want) {
			t.Errorf("lockdir %s = %q, want it to contain %q", args[0], out, want)
		}
	}
}
