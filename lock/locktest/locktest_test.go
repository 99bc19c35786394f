package locktest_test

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lockdir/lockdir/internal/childproc"
	"github.com/lockdir/lockdir/lock/locktest"
)

func TestMain(m *testing.M) {
	locktest.Main(m, openAny)
}

// TestReference runs the suite on the reference implementation.
func TestReference(t *testing.T) {
	t.Parallel()
	locktest.Run(t, locktest.Harness{New: newRef, Open: openRef})
}

// envBroken makes TestBroken run, in the child process of TestSuiteFails.
const envBroken = "LOCKTEST_SELFTEST_BROKEN"

// variants are the managers TestBroken runs the suite on, and the checks
// that must fail for each. The process checks run on "memory" only.
var variants = []struct {
	name string
	bugs bugs
	fail []string
}{
	{"memory", 0, []string{
		"Processes/ChildWaitsForParent",
		"Processes/ParentWaitsForChild",
		"Processes/KillReleases",
		"Processes/ChildAllocations",
		"Processes/ChildFree",
		"Processes/ChildCounter",
	}},
	{"bug-highest-first", bugHighestFirst, []string{
		"Contract/AllocateAll",
		"Contract/LowestFreeFirst",
	}},
	{"bug-free-leaks", bugFreeLeaks, []string{
		"Contract/FreeReallocates",
		"Contract/CapacityOne",
		"Contract/FreeNotAllocated",
		"Contract/AllocateAndRetrieveLock",
	}},
	{"bug-plain-errors", bugPlainErrors, []string{
		"Contract/AllocateAll",
		"Contract/InvalidID",
		"Contract/FreeNotAllocated",
		"Contract/AllocateAndRetrieveLock",
	}},
	{"bug-no-invalid-check", bugNoInvalidCheck, []string{
		"Contract/InvalidID",
		"Contract/CapacityOne",
	}},
	{"bug-retrieve-allocates", bugRetrieveAllocates, []string{
		"Contract/RetrieveLock",
		"Contract/LockDoesNotAllocate",
		"Contract/FreeNotAllocated",
	}},
	{"bug-unlock-no-panic", bugUnlockNoPanic, []string{
		"Contract/UnlockUnlockedPanics",
	}},
	{"bug-free-all-unlocks", bugFreeAllUnlocks, []string{
		"Contract/FreeAllLocks",
	}},
	{"bug-held-ignores-alloc", bugHeldIgnoresAlloc, []string{
		"Contract/LocksHeld",
		"Contract/FreeAllLocks",
	}},
	{"bug-freed-unusable", bugFreedUnusable, []string{
		"Contract/UsableAfterFree",
	}},
	{"bug-no-exclusion", bugNoExclusion, []string{
		"Contract/FreeAllLocks",
		"Contract/UsableAfterFree",
		"Goroutines/BlocksSameLocker",
		"Goroutines/BlocksOtherLocker",
		"Goroutines/BlocksOtherHandle",
		"Goroutines/UnlockInOtherGoroutine",
		"Goroutines/CounterSharedLocker",
		"Goroutines/CounterSeparateLockers",
		"Goroutines/CounterTwoHandles",
	}},
	{"bug-alloc-race", bugAllocRace, []string{
		"Goroutines/ConcurrentAllocate",
	}},
	{"shared", featShared, []string{
		"Processes/ChildWaitsForParent",
		"Processes/ParentWaitsForChild",
		"Processes/KillReleases",
		"Processes/ChildAllocations",
		"Processes/ChildFree",
		"Processes/ChildCounter",
		"SharedProcesses/ChildSharesWithParent",
		"SharedProcesses/ChildWriterExcludesReaders",
	}},
	{"bug-shared-exclusive", featShared | bugSharedExclusive, []string{
		"Shared/ReadersTogether",
	}},
	{"bug-shared-no-exclusion", featShared | bugSharedNoExclusion, []string{
		"Shared/ReaderBlocksWriter",
		"Shared/WriterBlocksReader",
	}},
	{"bug-reader-preference", featShared | bugReaderPreference, []string{
		"Shared/WriterPreference",
	}},
	{"bug-not-shared", bugNotShared, []string{
		"Contract/TwoHandles",
		"Contract/LocksHeld",
		"Goroutines/BlocksOtherHandle",
		"Goroutines/CounterTwoHandles",
		"Goroutines/ConcurrentAllocate",
	}},
}

// TestBroken runs the suite on broken managers. It runs only as a child
// process of TestSuiteFails, which checks that the suite fails.
func TestBroken(t *testing.T) {
	if os.Getenv(envBroken) == "" {
		t.Skip("runs as a child process of TestSuiteFails")
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			locktest.Run(t, memHarness(v.bugs))
		})
	}
}

// TestSuiteFails runs TestBroken in child processes, one for each variant
// so that a data race found in one does not fail the others, and checks
// that each broken manager fails the checks it should, and that the
// in-memory manager without bugs (with or without shared locks) fails only
// the process checks.
func TestSuiteFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite on broken managers")
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			cmd := childproc.Command(t, childproc.Spec{
				Exe:   exe,
				Run:   "^TestBroken$/^" + regexp.QuoteMeta(v.name) + "$",
				Flags: []string{"-test.skip=^TestBroken$/^bug-/^(Shared)?Processes$", "-test.v", "-test.timeout=2m", "-test.parallel=32"},
				Env:   []string{envBroken + "=1"},
			})
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed:\n%s", out)
			}
			if bytes.Contains(out, []byte("panic: ")) {
				t.Errorf("the suite panicked")
			}
			prefix := "TestBroken/" + v.name + "/"
			var got []string
			for _, m := range regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`).FindAllSubmatch(out, -1) {
				if c, ok := strings.CutPrefix(string(m[1]), prefix); ok && strings.Contains(c, "/") {
					got = append(got, c)
				}
			}
			slices.Sort(got)
			t.Logf("failed checks: %q", got)
			for _, c := range v.fail {
				if !slices.Contains(got, c) {
					t.Errorf("%s passed, want it to fail", c)
				}
			}
			if v.bugs&^featShared == 0 {
				for _, c := range got {
					if !strings.HasPrefix(c, "Processes/") && !strings.HasPrefix(c, "SharedProcesses/") {
						t.Errorf("%s failed on a manager correct within one process", c)
					}
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}
