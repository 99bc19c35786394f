//go:build unix

// Command minforkexec is the floor of a Go program that runs a command the
// way lockdir lock does: it finds the command with exec.LookPath, starts
// it with syscall.ForkExec in a process group of its own (not with os/exec,
// whose Start costs more), waits for it with wait4(2), and exits 1 if it
// failed. With -signals it first catches the seven signals that lock
// passes on, as lock does before it takes the lock.
//
// procbench's cli benchmark runs it both ways. Against minexec, it shows
// what os/exec's Start costs and what the signals cost; against it,
// lockdir's own share of lock's start-up: linking the library and the CLI,
// parsing the command line, checking the directory, taking the lock.
package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "-signals" {
		args = args[1:]
		sigs := make(chan os.Signal, 16)
		signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
			syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTSTP)
	}
	if len(args) == 0 {
		os.Exit(2)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		os.Exit(69)
	}
	pa := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setpgid: true}}
	pid, err := syscall.ForkExec(path, args, pa)
	if err != nil {
		os.Exit(69)
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		os.Exit(1)
	}
}
