package cli

import (
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestResolveDir(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name   string
		flag   string
		getenv func(string) string
		uid    int
		want   string
	}{
		{"flag wins", "/f", env("LOCKDIR_DIR", "/e", "XDG_RUNTIME_DIR", "/x"), 1000, "/f"},
		{"env next", "", env("LOCKDIR_DIR", "/e", "XDG_RUNTIME_DIR", "/x"), 1000, "/e"},
		{"xdg for users", "", env("XDG_RUNTIME_DIR", "/run/user/1000"), 1000, "/run/user/1000/lockdir"},
		{"run for root", "", env("XDG_RUNTIME_DIR", "/run/user/0"), 0, "/run/lockdir"},
		{"root env", "", env("LOCKDIR_DIR", "/e"), 0, "/e"},
		{"user without xdg", "", env(), 1000, "/tmp/lockdir-1000"},
		{"user without xdg, TMPDIR", "", env("TMPDIR", "/var/tmp"), 1000, "/var/tmp/lockdir-1000"},
	} {
		got, inTemp, err := resolveDir(tc.flag, tc.getenv, tc.uid)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
		if wantTemp := strings.Contains(tc.want, "lockdir-"); inTemp != wantTemp {
			t.Errorf("%s: in the temporary directory: %v, want %v", tc.name, inTemp, wantTemp)
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		stopAtFirst bool
		pos         []string
		n           bool
		w           string
	}{
		{[]string{"1", "-n", "2"}, false, []string{"1", "2"}, true, ""},
		{[]string{"-w", "5", "7", "--", "x", "-n"}, true, []string{"7", "--", "x", "-n"}, false, "5"},
		{[]string{"-1"}, false, []string{"-1"}, false, ""},
		{[]string{"-n", "--", "-n"}, false, []string{"-n"}, true, ""},
		{[]string{"-w=3", "a"}, false, []string{"a"}, false, "3"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		n := fs.Bool("n", false, "")
		w := fs.String("w", "", "")
		pos, err := parseFlags(fs, tc.args, tc.stopAtFirst)
		if err != nil || !slices.Equal(pos, tc.pos) || *n != tc.n || *w != tc.w {
			t.Errorf("parseFlags(%q) = %q, %v, n=%v w=%q; want %q, n=%v w=%q",
				tc.args, pos, err, *n, *w, tc.pos, tc.n, tc.w)
		}
	}
}
