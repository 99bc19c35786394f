package cli

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/lockdir/lockdir/filelock"
)

var statusCmd = &command{
	name:    "status",
	args:    "[--json] [ID...]",
	summary: "show capacity, allocated locks and their holders",
	help: `Shows the directory's capacity and how many locks are allocated and free,
then, for every allocated lock and every lock some process holds or
waits for, even beyond the capacity after a shrink (or for the given
IDs), whether it is held, and by which process: its PID and
command name (/proc/PID/comm), and the commands it runs (for lockdir lock,
the wrapped command); then the processes waiting for it. It warns about a
lock file or registry.lock deleted while in use. status never takes a
lock: holders and waiters are read from /proc/locks. --json prints the
same as one JSON object, for scripts: its fields may be added to but are
never renamed or removed (docs/cli.md in lockdir's sources lists them).`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		asJSON := fl.Bool("json", false, "print JSON, for scripts: stable fields, listed in lockdir's docs/cli.md")
		return func(args []string) error {
			ids, err := parseIDs("status", args)
			if err != nil {
				return err
			}
			st, err := getStatus(g, ids)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(st)
			}
			printStatus(st)
			return nil
		}
	},
}

// statusJSON is the output of 'status --json'. Its schema is documented in
// docs/cli.md and is stable: fields may be added, never renamed or removed.
type statusJSON struct {
	Version   int    `json:"version"` // schema version, 1
	Dir       string `json:"dir"`
	Capacity  uint32 `json:"capacity"`
	Allocated int    `json:"allocated"`
	Free      int    `json:"free"`
	// HoldersKnown is false where filelock cannot list holders (outside
	// Linux): every lock then reads as not held.
	HoldersKnown bool         `json:"holders_known"`
	Locks        []lockStatus `json:"locks"`
	// Unlinked lists lock files and registry.lock deleted while a
	// process holds or waits for them; empty where holders are unknown.
	Unlinked []unlinkedJSON `json:"unlinked"`
}

// unlinkedJSON is a deleted lock file or registry.lock still in use.
type unlinkedJSON struct {
	Path      string `json:"path"`
	PID       int    `json:"pid"`
	Command   string `json:"command"`
	Waiting   bool   `json:"waiting"`
	Exclusive bool   `json:"exclusive"`
}

type lockStatus struct {
	ID        uint32       `json:"id"`
	Allocated bool         `json:"allocated"`
	Held      bool         `json:"held"`
	Holders   []holderJSON `json:"holders"`
	Waiters   []holderJSON `json:"waiters"` // blocked in flock(2), in PID order
	// BeyondCapacity marks a lock whose ID is not below the capacity but
	// whose file a process holds or waits for: left by a shrink, since
	// resize refuses only allocated IDs and flock(2) needs no allocation.
	// It is left out when false, so that every other lock reads as it
	// did before the field was added, for scripts that match it whole.
	BeyondCapacity bool `json:"beyond_capacity,omitempty"`
}

type holderJSON struct {
	PID       int    `json:"pid"`     // 0 if unknown (another PID namespace)
	Command   string `json:"command"` // /proc/PID/comm, "" if unknown
	Exclusive bool   `json:"exclusive"`
	// Children are the holder's child processes, such as the command
	// that lockdir lock runs: they hold the lock with it. Empty for
	// waiters.
	Children []procJSON `json:"children"`
}

type procJSON struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
}

// getStatus gathers what status shows of the given IDs, or of every
// allocated, held or awaited lock if none are given.
func getStatus(g *globals, ids []uint32) (*statusJSON, error) {
	m, err := g.openManager(false)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	t, err := readLockTable(m)
	if err != nil {
		return nil, err
	}
	// A given ID beyond the capacity is shown, as without IDs, if a
	// process holds or waits for it; any other is refused, as a typo.
	capacity, err := checkIDs(m, t.unused(ids))
	if err != nil {
		return nil, err
	}
	allocated, err := m.Allocated()
	if err != nil {
		return nil, dirError(m.Dir(), err)
	}
	unlinked, err := unlinkedInUse(m)
	if err != nil {
		return nil, err
	}
	st := &statusJSON{
		Version:      1,
		Dir:          m.Dir(),
		Capacity:     capacity,
		Allocated:    len(allocated),
		Free:         max(0, int(capacity)-len(allocated)),
		HoldersKnown: t.known,
		Locks:        []lockStatus{},
		Unlinked:     unlinked,
	}
	for _, id := range t.toShow(ids, allocated) {
		_, isAlloc := slices.BinarySearch(allocated, id)
		ls := t.status(id, isAlloc)
		// capacity was read before allocated: an ID allocated by then is
		// below the capacity of then, whatever the first read said (a
		// resize and an allocation in between; review 15).
		ls.BeyondCapacity = id >= capacity && !isAlloc
		st.Locks = append(st.Locks, ls)
	}
	return st, nil
}

// lockTable is who holds and who waits for the locks of a directory,
// whatever their IDs: beyond the capacity too (filelock's LockUsers).
type lockTable struct {
	known            bool // false where filelock cannot tell (outside Linux)
	holders, waiters []filelock.Holder
}

func readLockTable(m *filelock.Manager) (lockTable, error) {
	var t lockTable
	var err error
	t.holders, t.waiters, err = m.LockUsers()
	if errors.Is(err, errors.ErrUnsupported) {
		return t, nil
	}
	if err != nil {
		return t, fmt.Errorf("finding lock holders and waiters: %w", err)
	}
	t.known = true
	return t, nil
}

// unused returns the IDs among ids that no process holds or waits for.
func (t lockTable) unused(ids []uint32) []uint32 {
	return slices.DeleteFunc(slices.Clone(ids), func(id uint32) bool {
		return slices.ContainsFunc(slices.Concat(t.holders, t.waiters), func(h filelock.Holder) bool { return h.ID == id })
	})
}

// toShow returns, in order, the IDs that status shows: ids if any are
// given, else every allocated, held or awaited lock.
func (t lockTable) toShow(ids, allocated []uint32) []uint32 {
	show := ids
	if len(show) == 0 {
		show = slices.Clone(allocated)
		for _, h := range slices.Concat(t.holders, t.waiters) {
			show = append(show, h.ID)
		}
	}
	slices.Sort(show)
	return slices.Compact(show)
}

// status is what status shows of lock id.
func (t lockTable) status(id uint32, allocated bool) lockStatus {
	ls := lockStatus{ID: id, Allocated: allocated, Holders: []holderJSON{}, Waiters: []holderJSON{}}
	for _, h := range t.holders {
		if h.ID == id {
			ls.Held = true
			ls.Holders = append(ls.Holders, holderJSON{PID: h.PID, Command: procComm(h.PID), Exclusive: h.Exclusive, Children: procChildren(h.PID)})
		}
	}
	for _, w := range t.waiters {
		if w.ID == id {
			ls.Waiters = append(ls.Waiters, holderJSON{PID: w.PID, Command: procComm(w.PID), Exclusive: w.Exclusive, Children: []procJSON{}})
		}
	}
	return ls
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printStatus(st *statusJSON) {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "directory:\t%s\n", st.Dir)
	fmt.Fprintf(tw, "capacity:\t%d\n", st.Capacity)
	fmt.Fprintf(tw, "allocated:\t%d\n", st.Allocated)
	fmt.Fprintf(tw, "free:\t%d\n", st.Free)
	if !st.HoldersKnown {
		fmt.Fprintf(tw, "holders:\tunknown on this system (known on Linux only)\n")
	}
	tw.Flush()
	if len(st.Locks) == 0 {
		return
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tALLOCATED\tHELD\tPID\tCOMMAND")
	for _, l := range st.Locks {
		if len(l.Holders) == 0 {
			held := yesNo(l.Held)
			if !st.HoldersKnown {
				held = "?"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t-\t-\n", l.ID, yesNo(l.Allocated), held)
		}
		for _, h := range l.Holders {
			held := "yes"
			if !h.Exclusive {
				held = "shared"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", l.ID, yesNo(l.Allocated), held, pidString(h.PID), describe(h))
		}
		for _, w := range l.Waiters {
			held := "waiting"
			if !w.Exclusive {
				held = "waiting-shared"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", l.ID, yesNo(l.Allocated), held, pidString(w.PID), describe(w))
		}
	}
	tw.Flush()
	for _, l := range st.Locks {
		if l.BeyondCapacity {
			fmt.Fprintln(stdout)
			fmt.Fprintf(stdout, "note: %s\n", beyondCapacityNote(l.ID, st.Capacity))
		}
	}
	for _, u := range st.Unlinked {
		fmt.Fprintln(stdout)
		fmt.Fprintf(stdout, "warning: %s\n", unlinkedWarning(u))
	}
}

func pidString(pid int) string {
	if pid > 0 {
		return strconv.Itoa(pid)
	}
	return "?"
}

// describe names a holder's command, and the commands it runs: for a
// lockdir lock, "lockdir lock → rsync".
func describe(h holderJSON) string {
	comm := h.Command
	if comm == "" {
		comm = "?"
	}
	if comm == "lockdir" && procSubcommand(h.PID) == "lock" {
		comm = "lockdir lock"
	}
	if len(h.Children) == 0 {
		return comm
	}
	var kids []string
	for _, c := range h.Children {
		kids = append(kids, cmp.Or(c.Command, "?"))
	}
	return comm + " → " + strings.Join(kids, ", ")
}

// beyondCapacityNote explains a lock shown although its ID is not below
// the capacity.
func beyondCapacityNote(id, capacity uint32) string {
	return fmt.Sprintf("lock %d is beyond the capacity (IDs 0 to %d), yet a process holds or waits for its file, likely since before a shrink (resize refuses only allocated IDs): it cannot be allocated unless the directory grows to %d locks or more",
		id, capacity-1, uint64(id)+1)
}

// unlinkedWarning explains a deleted lock file still in use.
func unlinkedWarning(u unlinkedJSON) string {
	what := "holds"
	if u.Waiting {
		what = "waits for"
	}
	return fmt.Sprintf("%s was deleted while process %d (%s) %s it: the next process to lock it creates a new file, and the two do not exclude each other. Stop every user of the directory and start them again; protect the directory from cleaners (see 'lockdir init')",
		u.Path, u.PID, cmp.Or(u.Command, "?"), what)
}

// unlinkedInUse lists m's lock files and registry.lock deleted while in
// use, or none where that cannot be seen (outside Linux).
func unlinkedInUse(m *filelock.Manager) ([]unlinkedJSON, error) {
	us, err := m.Unlinked()
	if errors.Is(err, errors.ErrUnsupported) {
		return []unlinkedJSON{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finding deleted lock files: %w", err)
	}
	out := []unlinkedJSON{}
	for _, u := range us {
		out = append(out, unlinkedJSON{Path: u.Path, PID: u.PID, Command: procComm(u.PID), Waiting: u.Waiting, Exclusive: u.Exclusive})
	}
	return out, nil
}
