//go:build unix

// Command minexecsig is minexec that first catches the seven signals that
// lockdir lock passes on to its command, as any Go program that forwards
// signals must: procbench's cli benchmark uses it to show how much the Go
// runtime's signal set-up costs (a round trip to its signal-mask thread
// per signal, and the threads it starts). lockdir's own share is measured
// against minforkexec -signals, which also starts its command the way
// lockdir does.
package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTSTP)
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		os.Exit(1)
	}
}
