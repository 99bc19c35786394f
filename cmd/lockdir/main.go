package main

import (
	"os"

	"github.com/lockdir/lockdir/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:]))
}
