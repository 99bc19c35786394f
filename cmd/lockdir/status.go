package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

var statusCmd = &command{
	name:    "status",
	args:    "[--json] [ID...]",
	summary: "show capacity, allocated locks and their holders",
	help: `Shows the directory's capacity and how many locks are allocated and free,
then, for every allocated lock and every lock some process holds (or for
the given IDs), whether it is held, and by which process: its PID and
command name (/proc/PID/comm). status never takes a lock: holders are read
from /proc/locks. --json prints a stable schema, see docs/cli.md.`,
	setup: func(fl *flag.FlagSet, g *globals) func([]string) error {
		asJSON := fl.Bool("json", false, "print JSON (schema in docs/cli.md)")
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
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
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
}

type lockStatus struct {
	ID        uint32       `json:"id"`
	Allocated bool         `json:"allocated"`
	Held      bool         `json:"held"`
	Holders   []holderJSON `json:"holders"`
}

type holderJSON struct {
	PID       int    `json:"pid"`     // 0 if unknown (another PID namespace)
	Command   string `json:"command"` // /proc/PID/comm, "" if unknown
	Exclusive bool   `json:"exclusive"`
}

func getStatus(g *globals, ids []uint32) (*statusJSON, error) {
	m, err := g.openManager(false)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	capacity, err := checkIDs(m, ids)
	if err != nil {
		return nil, err
	}
	allocated, err := m.Allocated()
	if err != nil {
		return nil, dirError(m.Dir(), err)
	}
	holdersKnown := true
	holders, err := m.Holders()
	if errors.Is(err, errors.ErrUnsupported) {
		holdersKnown = false
	} else if err != nil {
		return nil, fmt.Errorf("finding lock holders: %w", err)
	}
	st := &statusJSON{
		Version:      1,
		Dir:          m.Dir(),
		Capacity:     capacity,
		Allocated:    len(allocated),
		Free:         max(0, int(capacity)-len(allocated)),
		HoldersKnown: holdersKnown,
		Locks:        []lockStatus{},
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
	for _, id := range show {
		_, isAlloc := slices.BinarySearch(allocated, id)
		ls := lockStatus{ID: id, Allocated: isAlloc, Holders: []holderJSON{}}
		for _, h := range holders {
			if h.ID == id {
				ls.Held = true
				ls.Holders = append(ls.Holders, holderJSON{PID: h.PID, Command: procComm(h.PID), Exclusive: h.Exclusive})
			}
		}
		st.Locks = append(st.Locks, ls)
	}
	return st, nil
}

// procComm returns the command name of process pid, or "" if unknown.
func procComm(pid int) string {
	if pid <= 0 {
		return ""
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
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
			pid, comm := "?", h.Command
			if h.PID > 0 {
				pid = strconv.Itoa(h.PID)
			}
			if comm == "" {
				comm = "?"
			}
			held := "yes"
			if !h.Exclusive {
				held = "shared"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", l.ID, yesNo(l.Allocated), held, pid, comm)
		}
	}
	tw.Flush()
}
