package main

import (
	"os"

	"github.com/lockdir/lockdir/internal/cli"
	_ "github.com/lockdir/lockdir/internal/oneproc" // one P, set before other packages allocate
)

func main() {
	os.Exit(cli.Run(os.Args[1:]))
}
