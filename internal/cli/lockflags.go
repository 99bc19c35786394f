package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// lockOptions are the flags of 'lockdir lock', named as flock(1) names them.
type lockOptions struct {
	shared     bool    // -s: LOCK_SH instead of LOCK_EX
	nonblock   bool    // -n
	wait       float64 // -w SECONDS
	waitSet    bool
	conflict   int    // -E CODE
	command    string // -c STRING
	commandSet bool
	close      bool // -o: always in effect, but refused with -F as flock(1) does
	noFork     bool // -F
	verbose    bool // --verbose
}

// lockFlag is one of lock's options: its names (one letter for the short
// form, longer ones for -- or -), and whether it takes a value.
type lockFlag struct {
	names []string
	value bool
	usage string
	set   func(o *lockOptions, v string) error
}

func boolFlag(set func(o *lockOptions)) func(*lockOptions, string) error {
	return func(o *lockOptions, _ string) error { set(o); return nil }
}

// lockFlags mirrors flock(1)'s options that apply to a lock named by ID
// (util-linux 2.38). -u/--unlock needs a descriptor of the caller's own, so it
// has no counterpart; -o is always in effect and accepted for scripts that
// pass it.
var lockFlags = []lockFlag{
	{[]string{"s", "shared"}, false, "take a shared lock (LOCK_SH): it excludes exclusive holders only",
		boolFlag(func(o *lockOptions) { o.shared = true })},
	{[]string{"x", "e", "exclusive"}, false, "take an exclusive lock (LOCK_EX), the default",
		boolFlag(func(o *lockOptions) { o.shared = false })},
	{[]string{"n", "nb", "nonblock"}, false, "fail at once (exit 1 or the -E code) if the lock is busy",
		boolFlag(func(o *lockOptions) { o.nonblock = true })},
	{[]string{"w", "wait", "timeout"}, true, "fail (exit 1 or the -E code) after waiting SECONDS (a decimal) for the lock",
		func(o *lockOptions, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("invalid timeout value %q", v)
			}
			if !(f >= 0 && f <= maxWaitSeconds) { // also NaN
				return fmt.Errorf("-w %v: the timeout must be 0 to %d seconds", v, int64(maxWaitSeconds))
			}
			o.wait, o.waitSet = f, true
			return nil
		}},
	{[]string{"E", "conflict-exit-code"}, true, "exit CODE (0 to 255) when the lock is busy (-n) or the wait times out (-w)",
		func(o *lockOptions, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("invalid exit code %q", v)
			}
			if n < 0 || n > 255 {
				return fmt.Errorf("-E %d: exit codes are 0 to 255", n)
			}
			o.conflict = n
			return nil
		}},
	{[]string{"o", "close"}, false, "accepted for flock(1) compatibility: the command never inherits the lock (except with -F)",
		boolFlag(func(o *lockOptions) { o.close = true })},
	{[]string{"c", "command"}, true, "run STRING with $SHELL -c (default /bin/sh) instead of COMMAND [ARGS...]",
		func(o *lockOptions, v string) error { o.command, o.commandSet = v, true; return nil }},
	{[]string{"F", "no-fork"}, false, "exec the command in place of lockdir: the command itself holds the lock",
		boolFlag(func(o *lockOptions) { o.noFork = true })},
	{[]string{"verbose"}, false, "say how long getting the lock took, and why it failed",
		boolFlag(func(o *lockOptions) { o.verbose = true })},
}

func findLockFlag(name string) *lockFlag {
	for i := range lockFlags {
		for _, n := range lockFlags[i].names {
			if n == name {
				return &lockFlags[i]
			}
		}
	}
	return nil
}

// parseLockArgs parses lock's command line: flags (and the global --dir and
// --group) before the ID and between the ID and the command, the ID, an
// optional "--", and the command. It accepts what flock(1)'s getopt does:
// -nx, -w5, -w 5, --wait=5, --wait 5, and the single-dash long forms that
// the rest of lockdir accepts (-wait 5). The first argument after the ID
// that is not a flag starts the command, so "lockdir lock 7 echo -n" runs
// "echo -n".
func parseLockArgs(args []string, g *globals) (o lockOptions, id string, argv []string, err error) {
	o.conflict = exitBusy
	p := &lockArgs{args: args, o: &o, g: g}
	haveID := false
	for ; p.i < len(args); p.i++ {
		a := args[p.i]
		if a == "--" {
			argv = args[p.i+1:]
			break
		}
		if !isFlag(a) {
			if !haveID {
				id, haveID = a, true
				continue
			}
			argv = args[p.i:]
			break
		}
		if err := p.flag(a); err != nil {
			return o, "", nil, err
		}
	}
	if !haveID {
		return o, "", nil, errNoID
	}
	return o, id, argv, nil
}

// lockArgs is parseLockArgs's place in lock's command line, and what it
// has found so far.
type lockArgs struct {
	args []string
	i    int // the argument being parsed
	o    *lockOptions
	g    *globals
}

// flag parses the flag a, which is p.args[p.i], with its value.
func (p *lockArgs) flag(a string) error {
	name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
	value := func() (string, error) {
		if hasVal {
			return val, nil
		}
		return p.next(a)
	}
	switch name {
	case "h", "help":
		return errHelp
	case "dir", "group":
		v, err := value()
		if err != nil {
			return err
		}
		if name == "dir" {
			return placeFlag{name, &p.g.dir}.Set(v)
		}
		return placeFlag{name, &p.g.group}.Set(v)
	case "etcd", "cacert", "cert", "key", "prefix", "dial-timeout", "ttl":
		v, err := value()
		if err != nil {
			return err
		}
		*p.g.cl.lookup(name) = v
		p.g.cl.set = append(p.g.cl.set, name)
		return nil
	}
	if f := findLockFlag(name); f != nil && (len(name) > 1 || !strings.HasPrefix(a, "--")) {
		if !f.value {
			if hasVal {
				return fmt.Errorf("flag %s takes no value", a)
			}
			return f.set(p.o, "")
		}
		v, err := value()
		if err != nil {
			return err
		}
		return f.set(p.o, v)
	}
	if strings.HasPrefix(a, "--") || hasVal {
		return fmt.Errorf("flag provided but not defined: %s", a)
	}
	return p.cluster(a)
}

// cluster parses a cluster of one-letter flags, as getopt reads them:
// -sn, -nw5, -nw 5.
func (p *lockArgs) cluster(a string) error {
	for j := 1; j < len(a); j++ {
		f := findLockFlag(a[j : j+1])
		if f == nil {
			return fmt.Errorf("flag provided but not defined: -%c (in %s)", a[j], a)
		}
		if !f.value {
			f.set(p.o, "")
			continue
		}
		v := a[j+1:]
		if v == "" {
			var err error
			if v, err = p.next("-" + a[j:j+1]); err != nil {
				return err
			}
		}
		return f.set(p.o, v)
	}
	return nil
}

// next consumes the argument after flag, as its value.
func (p *lockArgs) next(flag string) (string, error) {
	if p.i+1 >= len(p.args) {
		return "", fmt.Errorf("flag needs an argument: %s", flag)
	}
	p.i++
	return p.args[p.i], nil
}

var errNoID = errors.New("no lock ID given")

// lockFlagsHelp lists lock's flags for 'lockdir lock -h'.
func lockFlagsHelp() string {
	var b strings.Builder
	for _, f := range lockFlags {
		var names []string
		for _, n := range f.names {
			if len(n) == 1 {
				names = append(names, "-"+n)
			} else {
				names = append(names, "--"+n)
			}
		}
		name := strings.Join(names, ", ")
		if f.value {
			name += " " + valueName(f.usage)
		}
		fmt.Fprintf(&b, "  %s\n    \t%s\n", name, f.usage)
	}
	b.WriteString("  --dir DIR\n    \tthe lock directory (see 'lockdir -h')\n")
	b.WriteString("  --group GROUP\n    \tshare the lock directory with this group (see 'lockdir -h')\n")
	b.WriteString("  --etcd HOST:PORT,... --cacert FILE --cert FILE --key FILE --prefix P --dial-timeout D --ttl D\n    \tlock on an etcd cluster instead (etcd-enabled lockdir only; see 'lockdir -h')\n")
	return b.String()
}

// valueName is the upper-case word in a flag's usage that names its value.
func valueName(usage string) string {
	for _, w := range strings.Fields(usage) {
		if len(w) > 1 && strings.ToUpper(w) == w && strings.Trim(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
			return w
		}
	}
	return "VALUE"
}
