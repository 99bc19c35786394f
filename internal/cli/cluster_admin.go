package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/lockdir/lockdir/filelock"
)

// runClusterCommand runs init, alloc, free, free-all or status on a
// cluster's lock space, with the flags and arguments that the command's
// setup declared on fl and checked as on files where they can be checked
// before the space is opened.
func runClusterCommand(name string, fl *flag.FlagSet, args []string, g *globals) error {
	flagValue := func(n string) any { return fl.Lookup(n).Value.(flag.Getter).Get() }
	switch name {
	case "init":
		if len(args) != 0 {
			return usageError("init", "init: unexpected argument %q", args[0])
		}
		n := flagValue("num-locks").(uint64)
		explicit := false
		fl.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "num-locks" })
		if n < 1 || n > filelock.MaxLocks {
			return usageError("init", "init: --num-locks %d is out of range: 1 to %d", n, filelock.MaxLocks)
		}
		return clusterInit(g, uint32(n), explicit)
	case "alloc":
		if len(args) > 1 {
			return usageError("alloc", "alloc: takes at most one ID, got %d arguments", len(args))
		}
		ids, err := parseIDs("alloc", args)
		if err != nil {
			return err
		}
		return clusterAlloc(g, ids)
	case "free":
		if len(args) == 0 {
			return usageError("free", "free: no lock ID given")
		}
		ids, err := parseIDs("free", args)
		if err != nil {
			return err
		}
		return clusterFree(g, ids)
	case "free-all":
		if len(args) != 0 {
			return usageError("free-all", "free-all: unexpected argument %q", args[0])
		}
		if !flagValue("yes").(bool) {
			return errorf(exitUsage,
				"make sure nothing uses the lock space, then run 'lockdir free-all --yes'",
				"free-all: refusing without --yes: it frees locks that programs may still be using, "+
					"and alloc would then hand their IDs to others")
		}
		return clusterFreeAll(g)
	case "status":
		ids, err := parseIDs("status", args)
		if err != nil {
			return err
		}
		return clusterStatus(g, ids, flagValue("json").(bool))
	}
	return usageError(name, "%s: works on a lock directory only, not on etcd", name)
}

// clusterInit creates the lock space with n locks, or reports the capacity
// of the one that exists, which must be n if n was given explicitly: as
// init does on files, except that etcd has no resize.
func clusterInit(g *globals, n uint32, explicit bool) error {
	s, err := g.openSpace("init", n)
	if err != nil {
		return err
	}
	defer s.Close()
	c := s.Capacity()
	if explicit && c != n {
		return errorf(exitConflict, "pick another prefix with --prefix: a lock space on etcd cannot be resized",
			"%s already exists with %d locks, not %d", s.Where(), c, n)
	}
	// New does not say whether it created the space, and telling would
	// cost a round trip: both answers succeed.
	fmt.Fprintf(stdout, "%s has %d locks\n", s.Where(), c)
	return nil
}

// checkSpaceIDs checks that every ID is below the space's capacity, with
// the message that checkIDs gives on files.
func checkSpaceIDs(s Space, ids []uint32) error {
	c := s.Capacity()
	for _, id := range ids {
		if id >= c {
			return errorf(exitUsage, "pick another prefix with --prefix, made with 'lockdir init --num-locks N', if you need this ID",
				"lock ID %d is out of range: %s has %d locks, IDs 0 to %d", id, s.Where(), c, c-1)
		}
	}
	return nil
}

func clusterAlloc(g *globals, ids []uint32) error {
	s, err := g.openSpace("alloc", filelock.DefaultNumLocks)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := checkSpaceIDs(s, ids); err != nil {
		return err
	}
	return spaceChangeError(allocIn(s, ids))
}

// unchanged passes an error from reading a lock space's allocations on as
// it is: it names the space and the endpoints already.
func unchanged(err error) error { return err }

func clusterFree(g *globals, ids []uint32) error {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	s, err := g.openSpace("free", 0)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := checkSpaceIDs(s, ids); err != nil {
		return err
	}
	return spaceChangeError(freeIn(s, ids, unchanged))
}

func clusterFreeAll(g *globals) error {
	s, err := g.openSpace("free-all", 0)
	if err != nil {
		return err
	}
	defer s.Close()
	return spaceChangeError(freeAllIn(s, unchanged))
}

// clusterStatusJSON is 'status --json' on etcd: the fields of statusJSON
// that mean something there, with "space" for "dir", and holders named by
// host and PID.
type clusterStatusJSON struct {
	Version   int                 `json:"version"` // schema version, 1
	Space     string              `json:"space"`
	Capacity  uint32              `json:"capacity"`
	Allocated int                 `json:"allocated"`
	Free      int                 `json:"free"`
	Locks     []clusterLockStatus `json:"locks"`
}

type clusterLockStatus struct {
	ID        uint32              `json:"id"`
	Allocated bool                `json:"allocated"`
	Held      bool                `json:"held"`
	Holders   []clusterHolderJSON `json:"holders"`
	Waiters   []clusterHolderJSON `json:"waiters"` // in the order they will get the lock
}

type clusterHolderJSON struct {
	Host string `json:"host"`
	PID  int    `json:"pid"` // 0 if the key does not say
}

func clusterStatus(g *globals, ids []uint32, asJSON bool) error {
	s, err := g.openSpace("status", 0)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := checkSpaceIDs(s, ids); err != nil {
		return err
	}
	allocated, err := s.Allocated()
	if err != nil {
		return spaceReadError(s, "reading the allocations", err)
	}
	holders, err := s.Holders()
	if err != nil {
		return spaceReadError(s, "finding lock holders", err)
	}
	show := ids
	if len(show) == 0 {
		show = slices.Clone(allocated)
		for _, h := range holders {
			show = append(show, h.ID)
		}
	}
	slices.Sort(show)
	show = slices.Compact(show)
	st := clusterStatusJSON{Version: 1, Space: s.Where(), Capacity: s.Capacity(), Allocated: len(allocated),
		Free: max(0, int(s.Capacity())-len(allocated)), Locks: []clusterLockStatus{}}
	for _, id := range show {
		_, isAlloc := slices.BinarySearch(allocated, id)
		ls := clusterLockStatus{ID: id, Allocated: isAlloc, Holders: []clusterHolderJSON{}, Waiters: []clusterHolderJSON{}}
		for _, h := range holders {
			if h.ID != id {
				continue
			}
			if h.Waiting {
				ls.Waiters = append(ls.Waiters, clusterHolderJSON{Host: h.Host, PID: h.PID})
			} else {
				ls.Held = true
				ls.Holders = append(ls.Holders, clusterHolderJSON{Host: h.Host, PID: h.PID})
			}
		}
		st.Locks = append(st.Locks, ls)
	}
	if asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "space:\t%s\n", st.Space)
	fmt.Fprintf(tw, "capacity:\t%d\n", st.Capacity)
	fmt.Fprintf(tw, "allocated:\t%d\n", st.Allocated)
	fmt.Fprintf(tw, "free:\t%d\n", st.Free)
	tw.Flush()
	if len(st.Locks) == 0 {
		return nil
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tALLOCATED\tHELD\tPID\tHOST")
	for _, l := range st.Locks {
		if len(l.Holders) == 0 && len(l.Waiters) == 0 {
			fmt.Fprintf(tw, "%d\t%s\tno\t-\t-\n", l.ID, yesNo(l.Allocated))
		}
		for _, h := range l.Holders {
			fmt.Fprintf(tw, "%d\t%s\tyes\t%s\t%s\n", l.ID, yesNo(l.Allocated), pidString(h.PID), h.Host)
		}
		for _, w := range l.Waiters {
			fmt.Fprintf(tw, "%d\t%s\twaiting\t%s\t%s\n", l.ID, yesNo(l.Allocated), pidString(w.PID), w.Host)
		}
	}
	return tw.Flush()
}

// describeClusterHolders names the holder of lock id for lock --verbose:
// " by PID 123 on host", or " by another process" if unknown.
func describeClusterHolders(s Space, id uint32) string {
	holders, err := s.Holders()
	if err != nil {
		return " by another process"
	}
	for _, h := range holders {
		if h.ID == id && !h.Waiting {
			return fmt.Sprintf(" by PID %s on %s", pidString(h.PID), h.Host)
		}
	}
	return " by another process"
}
