// Command minexec is the floor of a Go program that runs a command: it runs
// its arguments with os/exec, as lockdir lock does, and exits with their
// status. procbench's cli benchmark measures lockdir lock against it.
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
