package cli

import (
	"os"
	"os/signal"
	"syscall"
)

// quietQuit makes SIGQUIT end lockdir with exitQuit and no output, instead
// of Go's dump of every goroutine's stack, which is noise to a user who
// pressed Ctrl-\ and a leak of internals to a script.
func quietQuit() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGQUIT)
	go func() {
		<-c
		os.Exit(exitQuit)
	}()
}
