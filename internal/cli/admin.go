package cli

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

var initCmd = &command{
	name:    "init",
	args:    "[--num-locks N]",
	summary: "create the lock directory",
	help: `Creates the lock directory with room for N locks (IDs 0 to N-1).
If it exists with N locks already, init does nothing and succeeds; with
another capacity it fails (exit 4): change that with 'lockdir resize N'.
Other commands that need the directory (alloc, path, lock, check) create
it with the default capacity when it is missing.`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		n := fl.Uint64("num-locks", filelock.DefaultNumLocks, "capacity of the new directory, 1 to 16777216")
		return func(args []string) error {
			if len(args) != 0 {
				return usageError("init", "init: unexpected argument %q", args[0])
			}
			explicit := false
			fl.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "num-locks" })
			if *n < 1 || *n > filelock.MaxLocks {
				return usageError("init", "init: --num-locks %d is out of range: 1 to %d", *n, filelock.MaxLocks)
			}
			return runInit(g, uint32(*n), explicit)
		}
	},
}

// runInit creates the lock directory with n locks, or, if it exists,
// reports its capacity, which must be n if n was given explicitly.
func runInit(g *globals, n uint32, explicit bool) error {
	dir, err := g.resolve()
	if err != nil {
		return err
	}
	opts, err := g.options()
	if err != nil {
		return err
	}
	m, err := filelock.Create(dir, n, opts...)
	if err == nil {
		defer m.Close()
		fmt.Fprintf(stdout, "created %s with %d locks\n", dir, n)
		fmt.Fprintf(stdout, "protect it from cleaners: put \"x %s\" in /etc/tmpfiles.d/lockdir.conf (contrib/tmpfiles.d/lockdir.conf covers the default places)\n", dir)
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return dirError(dir, err)
	}
	c, err := existingCapacity(dir, err, opts)
	if err != nil {
		return err
	}
	if explicit && c != n {
		return errorf(exitConflict, fmt.Sprintf("change its capacity with 'lockdir resize %d'", n),
			"%s already exists with %d locks, not %d", dir, c, n)
	}
	fmt.Fprintf(stdout, "%s already exists with %d locks\n", dir, c)
	return nil
}

// existingCapacity is the capacity of the lock directory dir, which
// Create found to exist (createErr).
func existingCapacity(dir string, createErr error, opts []filelock.Option) (uint32, error) {
	m, err := filelock.Open(dir, opts...)
	if errors.Is(err, fs.ErrNotExist) {
		// Not a registry that exists, but a foreign directory.
		return 0, dirError(dir, createErr)
	}
	if err != nil {
		return 0, dirError(dir, err)
	}
	defer m.Close()
	c, err := m.Capacity()
	if err != nil {
		return 0, dirError(dir, err)
	}
	return c, nil
}

var allocCmd = &command{
	name:    "alloc",
	args:    "[ID]",
	summary: "allocate a lock and print its ID",
	help: `Allocates the lowest free lock and prints its ID. Given an ID, allocates
that one (exit 4 if it is already allocated). Allocation only reserves the
ID so that no one else is handed it; it does not lock anything.`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		return func(args []string) error {
			if len(args) > 1 {
				return usageError("alloc", "alloc: takes at most one ID, got %d arguments", len(args))
			}
			ids, err := parseIDs("alloc", args)
			if err != nil {
				return err
			}
			m, err := g.openManager(true)
			if err != nil {
				return err
			}
			defer m.Close()
			if len(ids) > 0 {
				if _, err := checkIDs(m, ids); err != nil {
					return err
				}
			}
			return allocIn(m, ids)
		}
	},
}

// allocIn allocates the lowest free lock of a, or ids[0] if given, which
// the caller has checked against the capacity, and prints its ID.
func allocIn(a Admin, ids []uint32) error {
	var l lock.Locker
	var err error
	if len(ids) == 0 {
		l, err = a.AllocateLock()
	} else {
		l, err = a.AllocateAndRetrieveLock(ids[0])
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, l.ID())
	return nil
}

var freeCmd = &command{
	name:    "free",
	args:    "ID...",
	summary: "free allocated locks",
	help: `Frees the given locks so that alloc may hand them out again. Every ID is
checked first: if one is out of range or not allocated, nothing is freed
(exit 2 or 4). Freeing does not unlock a lock that a process holds.`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		return func(args []string) error {
			if len(args) == 0 {
				return usageError("free", "free: no lock ID given")
			}
			ids, err := parseIDs("free", args)
			if err != nil {
				return err
			}
			return runFree(g, ids)
		}
	},
}

// runFree frees the locks ids, after checking that every one of them is
// allocated.
func runFree(g *globals, ids []uint32) error {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	m, err := g.openForIDs(false, ids)
	if err != nil {
		return err
	}
	defer m.Close()
	return freeIn(m, ids, func(err error) error { return dirError(m.Dir(), err) })
}

// freeIn frees ids, which are sorted, of a, after checking that every one
// of them is allocated. readErr explains an error reading the allocations.
func freeIn(a Admin, ids []uint32, readErr func(error) error) error {
	if err := checkAllocated(a, ids, readErr); err != nil {
		return err
	}
	for i, id := range ids {
		l, err := a.RetrieveLock(id)
		if err == nil {
			err = l.Free()
		}
		if err != nil {
			// Another process changed the registry since we checked, so
			// this is a partial change: say so rather than "nothing was
			// changed".
			hint := "nothing was freed; run 'lockdir status'"
			if i > 0 {
				hint = fmt.Sprintf("locks %v were freed before it; run 'lockdir status'", ids[:i])
			}
			return errorf(exitConflict, hint, "freeing lock %d: %v", id, err)
		}
	}
	return nil
}

// checkAllocated fails, naming them, if any of ids, which are sorted,
// is not allocated.
func checkAllocated(a Admin, ids []uint32, readErr func(error) error) error {
	allocated, err := a.Allocated()
	if err != nil {
		return readErr(err)
	}
	var notAllocated []string
	for _, id := range ids {
		if _, found := slices.BinarySearch(allocated, id); !found {
			notAllocated = append(notAllocated, strconv.FormatUint(uint64(id), 10))
		}
	}
	if len(notAllocated) == 0 {
		return nil
	}
	what := "lock " + notAllocated[0] + " is"
	if len(notAllocated) > 1 {
		what = "locks " + strings.Join(notAllocated, ", ") + " are"
	}
	return errorf(exitConflict, "run 'lockdir status' to see the allocated locks",
		"%s not allocated; nothing was freed", what)
}

var freeAllCmd = &command{
	name:    "free-all",
	args:    "--yes",
	summary: "free every lock (dangerous)",
	help: `Marks every lock free. This is dangerous: programs that still use their
locks keep using them while alloc hands the same IDs to others. Held locks
stay held. Use it only when nothing uses the directory, for example after a
reboot, before re-allocating every ID. Without --yes it refuses (exit 2).`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		yes := fl.Bool("yes", false, "really free every lock")
		return func(args []string) error {
			if len(args) != 0 {
				return usageError("free-all", "free-all: unexpected argument %q", args[0])
			}
			if !*yes {
				return errorf(exitUsage,
					"make sure nothing uses the lock directory, then run 'lockdir free-all --yes'",
					"free-all: refusing without --yes: it frees locks that programs may still be using, "+
						"and alloc would then hand their IDs to others")
			}
			m, err := g.openManager(false)
			if err != nil {
				return err
			}
			defer m.Close()
			return freeAllIn(m, func(err error) error { return dirError(m.Dir(), err) })
		}
	},
}

// freeAllIn frees every lock of a and says how many were allocated.
// readErr explains an error reading the allocations.
func freeAllIn(a Admin, readErr func(error) error) error {
	allocated, err := a.Allocated()
	if err != nil {
		return readErr(err)
	}
	if err := a.FreeAllLocks(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "freed %d locks\n", len(allocated))
	return nil
}

var resizeCmd = &command{
	name:    "resize",
	args:    "N",
	summary: "change the number of locks",
	help: `Changes the directory's capacity to N locks (IDs 0 to N-1). Growing always
works; shrinking fails (exit 4) while a lock with an ID of N or more is
allocated, and names those IDs.`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		return func(args []string) error {
			if len(args) != 1 {
				return usageError("resize", "resize: want exactly one argument, the new number of locks")
			}
			n, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || n < 1 || n > filelock.MaxLocks {
				return usageError("resize", "resize: %q is not a number of locks from 1 to %d", args[0], filelock.MaxLocks)
			}
			m, err := g.openManager(false)
			if err != nil {
				return err
			}
			defer m.Close()
			old, err := m.Capacity()
			if err != nil {
				return dirError(m.Dir(), err)
			}
			if err := m.Resize(uint32(n)); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "resized %s from %d to %d locks\n", m.Dir(), old, n)
			return nil
		}
	},
}

var pathCmd = &command{
	name:    "path",
	args:    "ID",
	summary: "print a lock's file, for flock(1)",
	help: `Prints the file that holds lock ID, creating it if needed (mode 0600, or 0660 in a shared directory), so
that shell scripts can take the same lock as Go programs:

    flock "$(lockdir path 7)" some-command

The ID need not be allocated, but allocate it ('lockdir alloc 7') so that
alloc does not hand it to someone else.`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		return func(args []string) error {
			if len(args) != 1 {
				return usageError("path", "path: want exactly one lock ID")
			}
			id, err := parseID("path", args[0])
			if err != nil {
				return err
			}
			m, err := g.openForIDs(true, []uint32{id})
			if err != nil {
				return err
			}
			defer m.Close()
			p, err := m.LockFile(id)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, p)
			return nil
		}
	},
}
