package main

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

// groupName is --group or $LOCKDIR_GROUP.
func (g *globals) groupName() string {
	if g.group != "" {
		return g.group
	}
	return os.Getenv("LOCKDIR_GROUP")
}

// openManager opens the lock directory. With create, a missing directory is
// created with room for filelock.DefaultNumLocks locks; without, a missing
// directory is an error that suggests 'lockdir init'.
func (g *globals) openManager(create bool) (*filelock.Manager, error) {
	dir, err := g.resolve()
	if err != nil {
		return nil, err
	}
	opts, err := g.options()
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

// classify returns the exit code and advice for an error that reached run.
func classify(err error) (int, string) {
	var e *exitError
	if errors.As(err, &e) {
		return e.code, e.hint
	}
	switch {
	case errors.Is(err, lock.ErrCorrupt):
		return exitDir, corruptHint
	case errors.Is(err, lock.ErrInvalidID):
		return exitUsage, "run 'lockdir status' to see the directory's capacity"
	case errors.Is(err, lock.ErrAllocated), errors.Is(err, lock.ErrNotAllocated):
		return exitConflict, "run 'lockdir status' to see which locks are allocated; nothing was changed"
	case errors.Is(err, lock.ErrNoFreeLocks):
		return exitConflict, "run 'lockdir status' to see the allocated locks"
	case errors.Is(err, fs.ErrPermission):
		return exitDir, "run as the user that owns the lock directory"
	}
	return exitFailure, ""
}

// parseID parses a lock ID given on the command line. It checks the syntax
// and the absolute limit, filelock.MaxLocks; checkIDs checks it against the
// directory's capacity.
func parseID(cmd, s string) (uint32, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, usageError(cmd, "lock ID %s is out of range: IDs are below %d", s, filelock.MaxLocks)
		}
		return 0, usageError(cmd, "lock ID %q is not a number: IDs are 0, 1, 2, ...", s)
	}
	if n < 0 {
		return 0, usageError(cmd, "lock ID %s is negative: IDs are 0, 1, 2, ...", s)
	}
	if n >= filelock.MaxLocks {
		return 0, usageError(cmd, "lock ID %s is out of range: IDs are below %d", s, filelock.MaxLocks)
	}
	return uint32(n), nil
}

func parseIDs(cmd string, args []string) ([]uint32, error) {
	ids := make([]uint32, 0, len(args))
	for _, a := range args {
		id, err := parseID(cmd, a)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// options returns the filelock options that --group or $LOCKDIR_GROUP
// asks for.
func (g *globals) options() ([]filelock.Option, error) {
	group := g.group
	if group == "" {
		group = os.Getenv("LOCKDIR_GROUP")
	}
	if group == "" {
		return nil, nil
	}
	gid, err := lookupGroup(group)
	if err != nil {
		return nil, errorf(exitUsage, "pass a group name from /etc/group or a numeric GID",
			"--group %s: %v", group, err)
	}
	return []filelock.Option{filelock.WithSharedGroup(gid)}, nil
}

// lookupGroup resolves a group name or numeric GID.
func lookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil {
		if n < 0 {
			return 0, errors.New("a GID is not negative")
		}
		return n, nil
	}
	return groupID(group)
}

// openForIDs opens the lock directory as openManager does and checks that
// every ID in ids is below its capacity, closing it again if one is not.
func (g *globals) openForIDs(create bool, ids []uint32) (*filelock.Manager, error) {
	m, err := g.openManager(create)
	if err != nil {
		return nil, err
	}
	if _, err := checkIDs(m, ids); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// checkIDs checks that every ID is below the directory's capacity.
func checkIDs(m *filelock.Manager, ids []uint32) (capacity uint32, err error) {
	capacity, err = m.Capacity()
	if err != nil {
		return 0, dirError(m.Dir(), err)
	}
	for _, id := range ids {
		if id >= capacity {
			return 0, errorf(exitUsage,
				fmt.Sprintf("grow the directory with 'lockdir resize %d' if you need this ID", id+1),
				"lock ID %d is out of range: %s has %d locks, IDs 0 to %d", id, m.Dir(), capacity, capacity-1)
		}
	}
	return capacity, nil
}
