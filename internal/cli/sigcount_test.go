//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cli

import (
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func init() { scriptCommands["sigcount"] = sigcountMain }

// sigcountMain is the test scripts' "sigcount LOG" command: a real child
// for lockdir lock that counts the signals it gets. It writes "PPID PGID"
// to LOG.ready once its handlers are in place, then, from the first
// signal on, counts for half a second (so that a duplicate has time to
// arrive), writes one "SIGNAME COUNT" line per signal to LOG and exits 0.
// It exits 3 if no signal comes within a minute.
func sigcountMain() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sigcount LOG")
		os.Exit(2)
	}
	logPath := os.Args[1]
	c := make(chan os.Signal, 64)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1)
	ready := fmt.Sprintf("%d %d\n", os.Getppid(), syscall.Getpgrp())
	if err := os.WriteFile(logPath+".tmp", []byte(ready), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Rename(logPath+".tmp", logPath+".ready")
	counts := map[string]int{}
	var window <-chan time.Time
	giveUp := time.After(time.Minute)
	for {
		select {
		case s := <-c:
			counts[unix.SignalName(s.(syscall.Signal))]++
			if window == nil {
				window = time.After(500 * time.Millisecond)
			}
		case <-window:
			var lines []string
			for name, n := range counts {
				lines = append(lines, fmt.Sprintf("%s %d\n", name, n))
			}
			sort.Strings(lines)
			os.WriteFile(logPath, []byte(strings.Join(lines, "")), 0o644)
			os.Exit(0)
		case <-giveUp:
			os.Exit(3)
		}
	}
}
