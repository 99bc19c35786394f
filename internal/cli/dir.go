package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

// resolveDir returns the lock directory: the first of the --dir flag,
// $LOCKDIR_DIR, $XDG_RUNTIME_DIR/lockdir for a non-root user, /run/lockdir
// for root, and, for a non-root user without $XDG_RUNTIME_DIR (cron, su,
// containers), lockdir-UID in the system's temporary directory, as
// Podman's rootless default does; shared reports that last case, whose
// directory sits where other users can create files first. The result is
// absolute, so that "lockdir path" prints a path that stays valid after a
// cd.
func resolveDir(flagDir string, getenv func(string) string, uid int) (dir string, shared bool, err error) {
	dir = flagDir
	if dir == "" {
		dir = getenv("LOCKDIR_DIR")
	}
	if dir == "" {
		switch {
		case uid == 0:
			dir = "/run/lockdir"
		case getenv("XDG_RUNTIME_DIR") != "":
			dir = filepath.Join(getenv("XDG_RUNTIME_DIR"), "lockdir")
		default:
			// os.TempDir's rule, through getenv for the tests.
			tmp := getenv("TMPDIR")
			if tmp == "" {
				tmp = "/tmp"
			}
			dir, shared = filepath.Join(tmp, "lockdir-"+strconv.Itoa(uid)), true
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, errorf(exitDir, "", "lock directory %s: %v", dir, err)
	}
	return abs, shared, nil
}

// resolve returns the lock directory (see resolveDir), creating or
// checking the per-user default in the temporary directory.
func (g *globals) resolve() (string, error) {
	dir, inTemp, err := resolveDir(g.dir, os.Getenv, os.Getuid())
	if err != nil || !inTemp {
		return dir, err
	}
	return dir, g.ensurePrivateTempDir(dir)
}

// ensurePrivateTempDir creates the per-user default directory dir, in the
// system's temporary directory, mode 0700, or checks the one that exists:
// it must be a real directory (not a symbolic link), owned by this user,
// and not open to others. Anyone can create /tmp/lockdir-UID before its
// user does, to watch or steal the user's locks; such a directory is
// refused with an explanation, never used or repaired. filelock checks
// the same again on the descriptor it opens, so a swap after this check
// is refused too.
func (g *globals) ensurePrivateTempDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return &exitError{code: exitDir, err: fmt.Errorf("lock directory %s: %w", dir, err),
			hint: "set LOCKDIR_DIR or XDG_RUNTIME_DIR to a directory of your own, or pass --dir"}
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return &exitError{code: exitDir, err: fmt.Errorf("lock directory %s: %w", dir, err)}
	}
	refuse := func(why string) error {
		return &exitError{code: exitDir,
			err:  fmt.Errorf("refusing the default lock directory %s: %s; another user may have made it to watch or take your locks", dir, why),
			hint: "remove it (its owner or root can), or set LOCKDIR_DIR or XDG_RUNTIME_DIR to a directory of your own, or pass --dir"}
	}
	uid, ok := fileOwner(fi)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return refuse("it is a symbolic link")
	case !fi.IsDir():
		return refuse("it is not a directory")
	case ok && uid != os.Geteuid():
		return refuse(fmt.Sprintf("it is owned by uid %d, not by you (uid %d)", uid, os.Geteuid()))
	case fi.Mode().Perm()&0o007 != 0, fi.Mode().Perm()&0o070 != 0 && g.groupName() == "":
		return refuse(fmt.Sprintf("its mode is %#o, not 0700", fi.Mode().Perm()))
	}
	return nil
}

// dirOptions returns the lock directory (see resolve) and the options to
// open it with.
func (g *globals) dirOptions() (string, []filelock.Option, error) {
	dir, err := g.resolve()
	if err != nil {
		return "", nil, err
	}
	opts, err := g.options()
	if err != nil {
		return "", nil, err
	}
	return dir, opts, nil
}

// openManager opens the lock directory. With create, a missing directory is
// created with room for filelock.DefaultNumLocks locks; without, a missing
// directory is an error that suggests 'lockdir init'.
func (g *globals) openManager(create bool) (*filelock.Manager, error) {
	dir, opts, err := g.dirOptions()
	if err != nil {
		return nil, err
	}
	var m *filelock.Manager
	if create {
		m, err = filelock.OpenOrCreate(dir, filelock.DefaultNumLocks, opts...)
	} else {
		m, err = filelock.Open(dir, opts...)
	}
	if err != nil {
		return nil, dirError(dir, err)
	}
	return m, nil
}

// dirError explains an error from opening the lock directory dir. Every
// such error has exit code exitDir.
func dirError(dir string, err error) error {
	e := &exitError{code: exitDir, err: fmt.Errorf("lock directory %s: %w", dir, err)}
	fi, lerr := os.Lstat(dir)
	switch {
	case errors.Is(err, lock.ErrCorrupt):
		e.hint = corruptHint
	case lerr == nil && fi.Mode()&fs.ModeSymlink != 0:
		e.hint = "lockdir refuses a lock directory that is a symbolic link; pass the real path with --dir"
	case lerr == nil && !fi.IsDir():
		e.hint = "--dir, $LOCKDIR_DIR or the default must name a directory, or a path to create one at"
	case errors.Is(err, fs.ErrNotExist) && errors.Is(lerr, fs.ErrNotExist):
		e.err = fmt.Errorf("lock directory %s does not exist", dir)
		e.hint = "create it with 'lockdir init', or pick another with --dir or $LOCKDIR_DIR"
	case errors.Is(err, fs.ErrNotExist):
		e.err = fmt.Errorf("%s is not a lock directory: %w", dir, err)
		e.hint = "make it one with 'lockdir init', or pick another with --dir or $LOCKDIR_DIR"
	case errors.Is(err, fs.ErrPermission):
		e.hint = "lockdir needs a directory that you own and only you can write (mode 0700): " +
			"fix it, or pick another with --dir or $LOCKDIR_DIR"
	case errors.Is(err, errors.ErrUnsupported):
		e.code = exitFailure
		e.hint = "filelock does not support this operating system"
	default:
		e.hint = "check the directory, or pick another with --dir or $LOCKDIR_DIR"
	}
	return e
}

const corruptHint = "the registry is never reset automatically: stop every program that uses " +
	"this directory, move it aside, run 'lockdir init', then allocate again the IDs your " +
	"programs use (see 'man lockdir')"

// placeFlag is --dir or --group, which refuse an empty value: a script's
// --dir "$LOCKS" with LOCKS unset would otherwise go on to $LOCKDIR_DIR or
// the default directory, and lock somewhere other than the directory it
// names (review 10b).
type placeFlag struct {
	name string
	p    *string
}

func (f placeFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f placeFlag) Set(v string) error {
	if v == "" {
		return fmt.Errorf("--%s is empty: give one, or leave --%s out", f.name, f.name)
	}
	*f.p = v
	return nil
}
