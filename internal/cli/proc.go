package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// What /proc says about the processes that hold or wait for locks, for
// status and lock --verbose. Each answer is "" or empty where /proc does
// not say: outside Linux, or for a process in another PID namespace (PID 0).

// readProc reads file name of /proc/PID, if pid is a known process.
func readProc(pid int, name string) ([]byte, bool) {
	if pid <= 0 {
		return nil, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + name)
	return b, err == nil
}

// procComm returns the command name of process pid, or "" if unknown.
func procComm(pid int) string {
	b, ok := readProc(pid, "comm")
	if !ok {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// procChildren returns the child processes of pid, from
// /proc/PID/task/*/children, or by scanning /proc for processes whose
// parent is pid where the kernel lacks that file. Never nil.
func procChildren(pid int) []procJSON {
	kids := []procJSON{}
	if pid <= 0 {
		return kids
	}
	var pids []int
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err == nil && len(tasks) > 0 {
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for f := range strings.FieldsSeq(string(b)) {
				if n, err := strconv.Atoi(f); err == nil {
					pids = append(pids, n)
				}
			}
		}
	} else {
		pids = childrenByPPid(pid)
	}
	slices.Sort(pids)
	for _, n := range slices.Compact(pids) {
		kids = append(kids, procJSON{PID: n, Command: procComm(n)})
	}
	return kids
}

// childrenByPPid scans /proc/*/stat for processes whose parent is pid.
func childrenByPPid(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			pids = append(pids, n)
		}
	}
	return pids
}

// procSubcommand returns the lockdir subcommand that process pid runs,
// skipping the global flags before it, or "".
func procSubcommand(pid int) string {
	b, ok := readProc(pid, "cmdline")
	if !ok {
		return ""
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--dir" || a == "-dir" || a == "--group" || a == "-group":
			i++ // the flag's value
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return ""
}
