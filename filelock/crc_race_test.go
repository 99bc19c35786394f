package filelock_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

// TestRaceSeesChecksumReads checks that the race detector sees what a
// checksum reads (review 14: on amd64 the sums are in assembly, which it
// does not instrument): a child under -race sums a page that another
// goroutine writes, and must be reported.
func TestRaceSeesChecksumReads(t *testing.T) {
	if os.Getenv("LOCKDIR_TEST_RACE_CHILD") == "1" {
		// One write on another goroutine, with nothing that orders it
		// before the sum: sleeping orders nothing for the race detector,
		// which reports the pair whenever both run.
		p := make([]byte, 4096)
		go func() { p[100] = 1 }()
		time.Sleep(50 * time.Millisecond)
		filelock.CRC32CForTest(p)
		return
	}
	if !raceEnabled {
		t.Skip("needs -race")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestRaceSeesChecksumReads$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LOCKDIR_TEST_RACE_CHILD=1")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "DATA RACE") {
		t.Errorf("the race detector did not report a page written by one goroutine while a checksum read it in another:\n%s", out)
	}
}
