//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// runChild runs the command while lockdir holds the lock, and returns its
// exit status.
//
// Signals, as flock(1) users expect them: the command sees each signal
// once. Go gives no siginfo, so lockdir cannot tell a signal sent to its
// process group (Ctrl-C, kill -INT -PGID) from one sent to it alone; if the
// command shared lockdir's group, passing signals on would deliver group
// signals twice, and not passing them on would drop directed ones. So the
// command runs in a process group of its own, lockdir passes every signal
// it gets on to that group exactly once, and a group signal aimed at
// lockdir's group reaches the command only through lockdir. When lockdir's
// terminal has lockdir's group in the foreground, the command's group
// takes the foreground, so that Ctrl-C, Ctrl-\ and Ctrl-Z go to the
// command only; lockdir takes the terminal back when the command stops or
// ends.
//
// Job control: when the command stops (Ctrl-Z, SIGTTIN, a SIGTSTP passed
// on), lockdir stops too, so that the shell that started lockdir sees the
// job stop and regains the terminal; when lockdir is continued (fg, bg),
// it gives the terminal back if it has it and continues the command.
func runChild(path string, argv []string, sigs chan os.Signal, pin *cpuPin) error {
	c, err := startChild(path, argv, os.Environ(), pin)
	if err != nil {
		return err
	}
	stopForwarding := forwardSignals(c.pid, sigs)
	ws, err := c.wait()
	if err != nil {
		return fmt.Errorf("lock: waiting for %s: %w", argv[0], err)
	}
	// No signal.Stop: lockdir exits next, and each signal it stops
	// would cost a round trip to the runtime's signal-mask thread.
	stopForwarding()
	c.reclaimTerminal()
	return childStatus(ws)
}

// child is the command's process, which leads a process group of its own.
type child struct {
	pid     int
	tty     int // the terminal lockdir hands to the command, or -1
	ourPgrp int // lockdir's process group
}

// startChild starts the command in a process group of its own, in the
// foreground of lockdir's terminal if lockdir is. It pins the rest of
// lockdir's threads with pin (which may be nil), then releases it on the
// thread that starts the command, whose affinity the command inherits.
func startChild(path string, argv, env []string, pin *cpuPin) (*child, error) {
	c := &child{tty: foregroundTTY(), ourPgrp: syscall.Getpgrp()}
	attr := &syscall.SysProcAttr{Setpgid: true}
	dieWithLockdir(attr)
	pin.pinRest()
	pin.releaseSelf()
	if c.tty >= 0 {
		// The child makes its group the terminal's foreground before its
		// exec (with signals blocked, so without SIGTTOU).
		attr.Foreground = true
		attr.Ctty = c.tty
	}
	pa := &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}, Sys: attr}
	pid, err := syscall.ForkExec(path, argv, pa)
	if err == syscall.ENOEXEC {
		pid, err = syscall.ForkExec(shellPath, shellArgv(path, argv), pa)
	}
	if err != nil {
		// The child may have taken the terminal before its exec failed.
		c.reclaimTerminal()
		return nil, errorf(exitCannotRun, "", "lock: cannot run %s: %v", argv[0], err)
	}
	c.pid = pid
	return c, nil
}

// forwardSignals passes every signal on sigs on to process group pgrp
// until the returned stop is called, which the caller does once the group
// has been reaped, so that no signal reaches a reused PID.
func forwardSignals(pgrp int, sigs <-chan os.Signal) (stop func()) {
	var mu sync.Mutex // guards done against a kill after the wait
	done := false
	go func() {
		for s := range sigs {
			mu.Lock()
			if !done {
				syscall.Kill(-pgrp, s.(syscall.Signal))
			}
			mu.Unlock()
		}
	}()
	return func() {
		mu.Lock()
		done = true
		mu.Unlock()
	}
}

// wait waits for the command to exit, and follows it each time it stops.
func (c *child) wait() (syscall.WaitStatus, error) {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(c.pid, &ws, syscall.WUNTRACED, nil)
		switch {
		case err == syscall.EINTR:
		case err != nil:
			return 0, err
		case ws.Stopped():
			c.followStop()
		default:
			return ws, nil
		}
	}
}

// followStop stops lockdir along with the stopped command, then, once
// lockdir is continued, continues the command.
func (c *child) followStop() {
	c.reclaimTerminal()
	stopSelf()
	// Continued: by fg if the shell gave lockdir the terminal, which then
	// goes on to the command, even if lockdir started in the background.
	if c.tty = foregroundTTY(); c.tty >= 0 {
		setForeground(c.tty, c.pid)
	}
	syscall.Kill(-c.pid, syscall.SIGCONT)
}

// reclaimTerminal gives the terminal, if lockdir handed it to the
// command, back to lockdir's process group.
func (c *child) reclaimTerminal() {
	if c.tty >= 0 {
		setForeground(c.tty, c.ourPgrp)
	}
}

// childStatus is lockdir's exit for the command's: the same code, or
// 128+N if signal N killed it.
func childStatus(ws syscall.WaitStatus) error {
	if ws.Signaled() {
		return signalStatus(ws.Signal())
	}
	if code := ws.ExitStatus(); code != 0 {
		return exitStatus(code)
	}
	return nil
}

// shellPath runs a file that has execute permission but no #! line, as
// execvp(3), and so flock(1), does.
const shellPath = "/bin/sh"

func shellArgv(path string, argv []string) []string {
	return append([]string{"sh", path}, argv[1:]...)
}

// foregroundTTY returns the first of stdin, stdout and stderr that is a
// terminal with lockdir's process group in the foreground, or -1. Only then
// does lockdir hand the terminal to the command: in the background, the
// terminal is not lockdir's to give.
func foregroundTTY() int {
	pgrp := syscall.Getpgrp()
	for fd := 0; fd <= 2; fd++ {
		if foregroundOf(fd) == pgrp {
			return fd
		}
	}
	return -1
}

// foregroundOf returns the foreground process group of terminal fd, or -1
// if fd is not a terminal.
func foregroundOf(fd int) int {
	pg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return -1
	}
	return pg
}

// setForeground makes pgrp the foreground process group of terminal fd.
// lockdir is in the background when it takes the terminal back, and a
// background process that sets the foreground gets SIGTTOU unless it
// ignores it; the command, already running, does not inherit the SIG_IGN.
func setForeground(fd, pgrp int) {
	if !signal.Ignored(syscall.SIGTTOU) {
		signal.Ignore(syscall.SIGTTOU)
		defer signal.Reset(syscall.SIGTTOU)
	}
	for {
		err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, pgrp)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// stopSelf stops lockdir's process group, as Ctrl-Z would have without the
// command's group in between, and returns once lockdir is continued. The
// group, not just lockdir, when lockdir had the terminal or leads its
// group: a script or pipeline around lockdir stops with it, as it would
// around flock(1).
//
// kill(2) does not stop the caller before it returns: another thread may
// take the stop, and this one runs on for a moment. So stopSelf waits for
// the SIGCONT that ends the stop; otherwise lockdir would look at the
// terminal before the shell had taken it back.
func stopSelf() {
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	if foregroundTTY() >= 0 || syscall.Getpgrp() == os.Getpid() {
		syscall.Kill(0, syscall.SIGSTOP)
	} else {
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
	<-cont
}
