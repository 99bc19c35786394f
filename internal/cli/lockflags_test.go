package cli

import (
	"slices"
	"strings"
	"testing"
)

func TestParseLockArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		id   string
		argv []string
		want lockOptions // conflict defaults to exitBusy unless set
		dir  string
		err  string // substring of the error; "" for none
	}{
		{args: []string{"7", "true"}, id: "7", argv: []string{"true"}},
		{args: []string{"-n", "7", "--", "echo", "-n"}, id: "7", argv: []string{"echo", "-n"}, want: lockOptions{nonblock: true}},
		{args: []string{"3", "-n", "--", "echo"}, id: "3", argv: []string{"echo"}, want: lockOptions{nonblock: true}},
		{args: []string{"7", "echo", "-n", "-w", "5"}, id: "7", argv: []string{"echo", "-n", "-w", "5"}},
		{args: []string{"-nE75", "7", "x"}, id: "7", argv: []string{"x"}, want: lockOptions{nonblock: true, conflict: 75}},
		{args: []string{"-w5", "7", "x"}, id: "7", argv: []string{"x"}, want: lockOptions{wait: 5, waitSet: true}},
		{args: []string{"--wait=0.5", "7", "x"}, id: "7", argv: []string{"x"}, want: lockOptions{wait: 0.5, waitSet: true}},
		{args: []string{"--timeout", "2", "-wait", "3", "7", "x"}, id: "7", argv: []string{"x"}, want: lockOptions{wait: 3, waitSet: true}},
		{args: []string{"-s", "-x", "7", "x"}, id: "7", argv: []string{"x"}},
		{args: []string{"-x", "--shared", "7", "x"}, id: "7", argv: []string{"x"}, want: lockOptions{shared: true}},
		{args: []string{"--nb", "-o", "--close", "-F", "--verbose", "7", "x"}, id: "7", argv: []string{"x"},
			want: lockOptions{nonblock: true, close: true, noFork: true, verbose: true}},
		{args: []string{"7", "-c", "echo hi"}, id: "7", want: lockOptions{command: "echo hi", commandSet: true}},
		{args: []string{"--command=echo hi", "7"}, id: "7", want: lockOptions{command: "echo hi", commandSet: true}},
		{args: []string{"--dir", "/d", "7", "--group=g", "x"}, id: "7", argv: []string{"x"}, dir: "/d"},
		{args: []string{"-1", "x"}, id: "-1", argv: []string{"x"}},
		{args: []string{"-n"}, err: "no lock ID"},
		{args: []string{"-Z", "7", "x"}, err: "not defined: -Z"},
		{args: []string{"-nZ", "7", "x"}, err: "not defined: -Z (in -nZ)"},
		{args: []string{"--bogus", "7", "x"}, err: "not defined: --bogus"},
		{args: []string{"--n", "7", "x"}, err: "not defined: --n"},
		{args: []string{"-w", "x", "7", "y"}, err: `invalid timeout value "x"`},
		{args: []string{"-w", "-1", "7", "y"}, err: "the timeout must be 0 to"},
		{args: []string{"-w", "NaN", "7", "y"}, err: "the timeout must be 0 to"},
		{args: []string{"-w", "1e300", "7", "y"}, err: "the timeout must be 0 to"},
		{args: []string{"-E", "256", "7", "y"}, err: "exit codes are 0 to 255"},
		{args: []string{"-E", "x", "7", "y"}, err: `invalid exit code "x"`},
		{args: []string{"--nb=1", "7", "y"}, err: "takes no value"},
		{args: []string{"7", "-w"}, err: "flag needs an argument"},
		{args: []string{"-h"}, err: "help requested"},
		{args: []string{"7", "--help"}, err: "help requested"},
	} {
		var g globals
		o, id, argv, err := parseLockArgs(tc.args, &g)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseLockArgs(%q): error %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		want := tc.want
		if want.conflict == 0 {
			want.conflict = exitBusy
		}
		if err != nil || id != tc.id || !slices.Equal(argv, tc.argv) || o != want || g.dir != tc.dir {
			t.Errorf("parseLockArgs(%q) = %+v, %q, %q, dir %q, %v; want %+v, %q, %q, dir %q",
				tc.args, o, id, argv, g.dir, err, want, tc.id, tc.argv, tc.dir)
		}
	}
}
