// Package tortureflag holds the knobs shared by lockdir's torture tests
// (internal/torture and filelock's TestTortureFaults): the mode and how long
// each test runs. Importing it registers the test flags -torture.long and
// -torture.duration.
package tortureflag

import (
	"flag"
	"os"
	"testing"
	"time"
)

var (
	long     = flag.Bool("torture.long", false, "long mode: run each torture test for 2 minutes (or -torture.duration)")
	duration = flag.Duration("torture.duration", 0, "how long each torture test runs")
)

// Mode returns "smoke" (plain go test), "short" (LOCKDIR_TORTURE=short,
// what make torture and CI run) or "long" (LOCKDIR_TORTURE=long or
// -torture.long).
func Mode() string {
	switch m := os.Getenv("LOCKDIR_TORTURE"); {
	case *long || m == "long":
		return "long"
	case m == "short":
		return "short"
	}
	return "smoke"
}

// Duration returns how long a test runs: -torture.duration or
// $LOCKDIR_TORTURE_DURATION if set, else smoke or short in those modes and
// two minutes in the long one. go test -short caps it at smoke.
func Duration(t *testing.T, smoke, short time.Duration) time.Duration {
	d := *duration
	if d == 0 {
		if s := os.Getenv("LOCKDIR_TORTURE_DURATION"); s != "" {
			var err error
			if d, err = time.ParseDuration(s); err != nil {
				t.Fatalf("LOCKDIR_TORTURE_DURATION: %v", err)
			}
		}
	}
	if d == 0 {
		switch Mode() {
		case "smoke":
			d = smoke
		case "short":
			d = short
		default:
			d = 2 * time.Minute
		}
	}
	if testing.Short() {
		d = min(d, smoke)
	}
	return d
}
