package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

var errHelp = errors.New("help requested")

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis after the name
	summary string // one line for the command list
	help    string // paragraph(s) after the synopsis in -h
	hidden  bool
	// setup declares the command's flags on fs and returns its body, which
	// runs after flags are parsed with the positional arguments.
	setup func(fs *flag.FlagSet, g *globals) func(args []string) error
	// stopAtFirstArg stops flag parsing at the first positional argument.
	stopAtFirstArg bool
	// raw, if set, replaces setup: the command parses its own command line
	// (lock, whose flags follow flock(1)'s getopt rules), and returns
	// errHelp for -h. flagsHelp then lists its flags for -h.
	raw       func(args []string, g *globals) error
	flagsHelp func() string
	// ownSignals says that the command handles SIGQUIT itself (lock passes
	// it on to its command); for the others run makes it exit quietly.
	ownSignals bool
}

// globals are the flags every command accepts.
type globals struct {
	dir   string
	group string // --group: share the directory with this group
	cl    clusterFlags
}

var stdout io.Writer = os.Stdout
var stderr io.Writer = os.Stderr

func commands() []*command {
	return []*command{
		initCmd, allocCmd, freeCmd, freeAllCmd, resizeCmd, pathCmd,
		statusCmd, lockCmd, checkCmd, checkWorkerCmd, versionCmd,
	}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

const mainUsage = `Usage: lockdir [--dir DIR] [--group GROUP] COMMAND [ARGS...]

lockdir manages multiprocess locks kept in a directory of files, one file
per numbered lock, locked with flock(2). Shell scripts and Go programs
(package github.com/lockdir/lockdir/filelock) share the same locks.

Commands:
%s
Global flags (accepted before or after the command name):
  --dir DIR   the lock directory. Default: $LOCKDIR_DIR, else
              $XDG_RUNTIME_DIR/lockdir for a non-root user, else
              /run/lockdir for root, else $TMPDIR/lockdir-UID (/tmp
              by default; made 0700, refused if another user made it).
  --group GROUP  share the directory with GROUP (a name or a numeric
              GID), as $LOCKDIR_GROUP does: a directory made with it is
              mode 02770 and its files 0660; without it, 0700 and 0600,
              and a group-writable directory is refused.
  --etcd HOST:PORT,...  lock on this etcd cluster instead of a directory,
              as a non-empty $LOCKDIR_ETCD does: init, alloc, free,
              free-all, status and lock (the etcd-enabled lockdir only;
              this one says so if it is not). With it: --cacert FILE,
              --cert FILE, --key FILE (TLS, as etcdctl's), --prefix P
              (the lock space's keys, default $LOCKDIR_ETCD_PREFIX or
              /lockdir/), --dial-timeout D (default 5s: an unreachable
              cluster fails after about D), --ttl D (default 10s: a dead
              holder's lock is free within D).

  --version   print lockdir's version and exit.

Run 'lockdir COMMAND -h' for a command's flags and arguments.
Exit codes: 0 ok, 1 busy or timed out, 2 usage, 3 unusable directory,
4 refused by the locks' state, 5 other failure, 6 check found violations,
7 lock lost on etcd, 131 SIGQUIT. Run 'man lockdir' for more; docs/cli.md in lockdir's
sources has all of it.
`

func printMainUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		if !c.hidden {
			fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

// Run runs the lockdir command line args (without the program name) and
// returns the exit code.
func Run(args []string) int {
	growStack(0)
	err := runArgs(args)
	return report(err)
}

// runArgs parses the global flags and runs the command that args name.
func runArgs(args []string) error {
	var g globals
	rest := args
	// Most command lines name the command first ('lockdir lock 7 -- cmd'
	// in a script's loop); they have no global flags to parse, and
	// building the flag set costs about 25 us of such a lock's 4 ms.
	if len(args) == 0 || isFlag(args[0]) || args[0] == "--" {
		var err error
		var done bool
		if rest, done, err = parseGlobals(&g, args); done || err != nil {
			return err
		}
	}
	if len(rest) == 0 {
		printMainUsage(stderr)
		return exitStatus(exitUsage)
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		if len(rest) == 0 {
			printMainUsage(stdout)
			return nil
		}
		name, rest = rest[0], []string{"-h"}
	}
	c := findCommand(name)
	if c == nil {
		return usageError("", "unknown command %q", name)
	}
	return runCommand(c, rest, &g)
}

// parseGlobals parses the global flags that come before the command's
// name into g, and returns the rest of args. done says that it handled
// the command line itself (-h, --version).
func parseGlobals(g *globals, args []string) (rest []string, done bool, err error) {
	top := flag.NewFlagSet("lockdir", flag.ContinueOnError)
	top.Var(placeFlag{"dir", &g.dir}, "dir", "")
	top.Var(placeFlag{"group", &g.group}, "group", "")
	g.cl.declare(top)
	showVersion := top.Bool("version", false, "")
	rest, err = parseFlags(top, args, true)
	switch {
	case errors.Is(err, errHelp):
		printMainUsage(stdout)
		return nil, true, nil
	case err != nil:
		return nil, true, usageError("", "%v", err)
	case *showVersion:
		return nil, true, printVersion(stdout)
	}
	return rest, false, nil
}

// runCommand runs command c with its command line args, the global flags
// before its name already parsed into g.
func runCommand(c *command, rest []string, g *globals) error {
	if !c.ownSignals {
		quietQuit()
	}
	if c.raw != nil {
		err := c.raw(rest, g)
		if errors.Is(err, errHelp) {
			printRawUsage(stdout, c)
			return nil
		}
		return err
	}
	fl := flag.NewFlagSet("lockdir "+c.name, flag.ContinueOnError)
	fl.Var(placeFlag{"dir", &g.dir}, "dir", "the lock `directory` (see 'lockdir -h')")
	fl.Var(placeFlag{"group", &g.group}, "group", "share the lock directory with this `group` (see 'lockdir -h')")
	g.cl.declare(fl)
	body := c.setup(fl, g)
	pos, err := parseFlags(fl, rest, c.stopAtFirstArg)
	if errors.Is(err, errHelp) {
		printCommandUsage(stdout, c, fl)
		return nil
	}
	if err != nil {
		return usageError(c.name, "%s: %v", c.name, err)
	}
	if c.name != "version" {
		on, err := g.onCluster(c.name)
		if err != nil {
			return err
		}
		if on {
			return runClusterCommand(c.name, fl, pos, g)
		}
	}
	return body(pos)
}

func printCommandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: lockdir %s %s\n\n", c.name, c.args)
	if c.help != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.help))
	}
	fmt.Fprintf(w, "Flags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func printRawUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: lockdir %s %s\n\n", c.name, c.args)
	if c.help != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.help))
	}
	fmt.Fprintf(w, "Flags:\n%s", c.flagsHelp())
}

// parseFlags parses the flags in args, which may come before, between and
// after positional arguments, and returns the positional arguments.
// "--" ends the flags. A negative number such as -1 is a positional argument
// (so that "free -1" says the ID is negative instead of "unknown flag").
// With stopAtFirst, parsing stops at the first positional argument, which is
// returned with everything after it verbatim. -h, -help and --help anywhere
// among the flags return errHelp.
func parseFlags(fs *flag.FlagSet, args []string, stopAtFirst bool) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !isFlag(a) {
			if stopAtFirst {
				pos = append(pos, args[i:]...)
				break
			}
			pos = append(pos, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		if name == "h" || name == "help" {
			return nil, errHelp
		}
		flags = append(flags, a)
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // fs.Parse reports it
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

// isFlag reports whether command-line argument a is a flag: it starts
// with "-" and is not "-" alone or a negative number.
func isFlag(a string) bool {
	return len(a) >= 2 && a[0] == '-' && !isNumber(a[1:])
}

// isNumber reports whether s is a decimal number without a sign.
func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
