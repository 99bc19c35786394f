// Command minexec is the floor of a Go program that runs a command: it runs
// its arguments with os/exec and exits 1 if they failed. procbench's cli
// benchmark measures lockdir lock against it, the floor that issue 12 names
// (lockdir itself starts its command with syscall.ForkExec: see
// minforkexec).
package main

import (
	"os"
	"os/exec"
)

func main() {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		os.Exit(1)
	}
}
