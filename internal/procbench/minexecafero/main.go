// Command minexecafero is minexec that also imports
// github.com/spf13/afero, to measure what linking afero alone costs a
// program's size and start-up.
package main

import (
	"os"
	"os/exec"

	_ "github.com/spf13/afero"
)

func main() {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		os.Exit(1)
	}
}
