package cli

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

var versionCmd = &command{
	name:    "version",
	args:    "",
	summary: "print lockdir's version (also: lockdir --version)",
	help: `Prints the module version lockdir was built from; for a build from a
checkout, the VCS revision and its commit time too, with "+dirty" if
the work tree had changes.`,
	setup: func(fs *flag.FlagSet, g *globals) func([]string) error {
		return func(args []string) error {
			if len(args) > 0 {
				return usageError("version", "version: no arguments expected")
			}
			return printVersion(stdout)
		}
	},
}

// buildRevision is the VCS revision for builds that cannot record it in
// the build info: 'go build' stamps it only when the module's .git is a
// directory, not in a git worktree. make install sets it with
// -ldflags "-X github.com/lockdir/lockdir/internal/cli.buildRevision=...".
var buildRevision string

// printVersion prints one line: the version from the build info, such as
// "lockdir v1.2.0 (go1.26.8 linux/amd64)" for 'go install ...@v1.2.0', or
// "lockdir (devel) revision 1a2b3c4d5e6f 2026-12-01T18:00:00Z+dirty (...)"
// for 'go build' in a checkout; the etcd-enabled build adds " with etcd".
func printVersion(w io.Writer) error {
	etcd := ""
	if cluster != nil {
		etcd = " with etcd" // the etcd-enabled build, etcdlock/cmd/lockdir
	}
	_, err := fmt.Fprintf(w, "lockdir %s (%s %s/%s)%s\n", versionString(debug.ReadBuildInfo()), runtime.Version(), runtime.GOOS, runtime.GOARCH, etcd)
	return err
}

// versionString describes a build: the module version when it is a real
// one, followed by the VCS revision and time whenever the build recorded
// them, so that a "(devel)" build is never reported without its revision.
func versionString(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "(unknown version: built without module support)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, when, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev == "" && buildRevision != "" {
		var dirty bool
		if rev, dirty = strings.CutSuffix(buildRevision, "+dirty"); dirty {
			modified = "+dirty"
		}
	}
	switch {
	case rev != "":
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " revision " + rev
		if when != "" {
			v += " " + when
		}
		v += modified
	case v == "(devel)":
		v += ", no VCS revision recorded (built with -buildvcs=false or outside a checkout)"
	}
	return v
}
