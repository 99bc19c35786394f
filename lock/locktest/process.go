package locktest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockdir/lockdir/internal/childproc"
	"github.com/lockdir/lockdir/lock"
)

// processChecks check mutual exclusion and allocation between the test
// process and child processes.
var processChecks = []check{
	{"ChildWaitsForParent", checkChildWaitsForParent},
	{"ParentWaitsForChild", checkParentWaitsForChild},
	{"KillReleases", checkKillReleases},
	{"ChildAllocations", checkChildAllocations},
	{"ChildFree", checkChildFree},
	{"ChildCounter", checkChildCounter},
}

// Size of the child counter check: processes, and increments by each.
const (
	counterChildren      = 4
	counterChildRounds   = 100
	allocChildren        = 3
	allocChildLocks      = 10
	allocChildrenSurplus = 5
)

// processSetup skips the process checks where the test binary cannot be
// started again, and stops them if Main is not in charge of TestMain.
func processSetup(t *testing.T) {
	switch runtime.GOOS {
	case "js", "wasip1", "ios", "android":
		t.Skipf("cannot start child processes on %s", runtime.GOOS)
	}
	if _, err := os.Executable(); err != nil {
		t.Skipf("cannot find the test binary: %v", err)
	}
	if mainOpen == nil {
		t.Fatal("locktest.Main is not called from TestMain: the process checks need it to run child processes")
	}
}

// startChild starts the test binary as a child process in the given role,
// on the locks at addr, with further environment variables env. At the end
// of t the child's input is closed and it is given patience to exit before
// it is killed.
func startChild(t *testing.T, role, addr string, env ...string) *childproc.Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Command's -test.run=^$ keeps a test binary that does not call Main
	// from running the tests again.
	return childproc.Start(t, childproc.Spec{
		Role:  "locktest/" + role,
		Exe:   exe,
		Env:   append([]string{envAddr + "=" + addr}, env...),
		Grace: patience,
	})
}

// checkChildWaitsForParent: a child blocks in Lock while the test holds
// the lock, and gets it once the test unlocks.
func checkChildWaitsForParent(t *testing.T, s *suite) {
	m, addr := s.new(t, 4)
	l := allocate(t, m)
	lockWithin(t, l, "the lock is free")
	c := startChild(t, "hold", addr, envID+"="+fmt.Sprint(l.ID()))
	c.Expect("ready", patience)
	if c.Quiet(blockWindow, "the test process holds the lock") {
		unlock(t, l)
		c.Expect("locked", patience)
	} else {
		unlock(t, l)
	}
	c.Wait(patience)
	lockWithin(t, l, "the child unlocked it and exited")
	unlock(t, l)
}

// checkParentWaitsForChild: the test blocks in Lock while a child holds the
// lock, and gets it once the child unlocks. LocksHeld reports the lock
// while the child holds it.
func checkParentWaitsForChild(t *testing.T, s *suite) {
	m, addr := s.new(t, 4)
	l := allocate(t, m)
	allocate(t, m)
	c := startChild(t, "hold", addr, envID+"="+fmt.Sprint(l.ID()))
	c.Expect("ready", patience)
	c.Expect("locked", patience)
	wantHeld(t, m, []uint32{l.ID()}, "while a child holds a lock")
	a := tryLock(l)
	if a.blocked(t, "a child process holds it") {
		c.CloseStdin()
		c.Expect("unlocked", patience)
		a.wait(t, patience, "the child unlocked it")
	}
	c.Wait(patience)
	unlock(t, l)
	wantHeld(t, m, nil, "after the child unlocked")
}

// checkKillReleases: killing a child that holds a lock releases the lock
// at once, or within Harness.KillRelease.
func checkKillReleases(t *testing.T, s *suite) {
	m, addr := s.new(t, 4)
	l := allocate(t, m)
	c := startChild(t, "hold", addr, envID+"="+fmt.Sprint(l.ID()))
	c.Expect("ready", patience)
	c.Expect("locked", patience)
	a := tryLock(l)
	if !a.blocked(t, "a child process holds it") {
		return
	}
	killed := time.Now()
	if err := c.Kill(); err != nil {
		t.Fatalf("killing child: %v", err)
	}
	limit := killLimit
	if s.h.KillRelease > 0 {
		limit = s.h.KillRelease
	}
	at := a.wait(t, limit, "the child holding it was killed")
	t.Logf("lock acquired %v after killing its holder", at.Sub(killed))
	unlock(t, l)
	<-c.Exited()
	wantHeld(t, m, nil, "after the holder was killed")
}

// checkChildAllocations allocates locks from several children at once: the
// test sees each allocation, and AllocateLock in the test never returns an
// ID a child allocated.
func checkChildAllocations(t *testing.T, s *suite) {
	const n = allocChildren*allocChildLocks + allocChildrenSurplus
	m, addr := s.new(t, n)
	var cs []*childproc.Child
	for range allocChildren {
		c := startChild(t, "allocate", addr, envN+"="+fmt.Sprint(allocChildLocks))
		cs = append(cs, c)
	}
	for _, c := range cs {
		c.Expect("ready", patience)
	}
	for _, c := range cs {
		c.Send("go")
	}
	byChild := make(map[uint32]bool)
	for _, c := range cs {
		for range allocChildLocks {
			line := c.Next(patience)
			id, err := strconv.ParseUint(line, 10, 32)
			if err != nil {
				t.Fatalf("child allocate printed %q, want an ID", line)
			}
			if byChild[uint32(id)] {
				t.Errorf("AllocateLock in two children returned ID %d", id)
			}
			byChild[uint32(id)] = true
		}
		c.Wait(patience)
	}
	wantAvailable(t, m, n-uint32(len(byChild)), "after allocations in children")
	for id := range byChild {
		if id >= n {
			t.Errorf("AllocateLock in a child returned ID %d, out of range for capacity %d", id, n)
			continue
		}
		_, err := m.AllocateAndRetrieveLock(id)
		wantErr(t, err, lock.ErrAllocated, "AllocateAndRetrieveLock of an ID a child allocated")
	}
	for range n - len(byChild) {
		l, err := m.AllocateLock()
		if err != nil {
			t.Fatalf("AllocateLock with locks left after children allocated: %v", err)
		}
		if byChild[l.ID()] {
			t.Errorf("AllocateLock returned ID %d, which a child allocated", l.ID())
		}
	}
	_, err := m.AllocateLock()
	wantErr(t, err, lock.ErrNoFreeLocks, "AllocateLock at capacity")
}

// checkChildFree frees a lock in a child: the test can allocate it again.
func checkChildFree(t *testing.T, s *suite) {
	const n = 4
	m, addr := s.new(t, n)
	for range n {
		allocate(t, m)
	}
	c := startChild(t, "free", addr, envID+"=2")
	c.Expect("freed", patience)
	c.Wait(patience)
	wantAvailable(t, m, 1, "after Free in a child")
	allocateID(t, m, 2)
}

// checkChildCounter runs children that each increment a counter in a file
// under one lock: no increment is lost, and no child enters the critical
// section while another is in it.
func checkChildCounter(t *testing.T, s *suite) {
	m, addr := s.new(t, 4)
	id := allocate(t, m).ID()
	file := filepath.Join(t.TempDir(), "counter")
	if err := os.WriteFile(file, []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cs []*childproc.Child
	for range counterChildren {
		cs = append(cs, startChild(t, "count", addr,
			envID+"="+fmt.Sprint(id), envN+"="+fmt.Sprint(counterChildRounds), envFile+"="+file))
	}
	for _, c := range cs {
		c.Expect("ready", patience)
	}
	for _, c := range cs {
		c.Send("go")
	}
	for _, c := range cs {
		c.Expect("done", s.counterPatience())
		c.Wait(patience)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), fmt.Sprint(counterChildren*counterChildRounds); got != want {
		t.Errorf("counter incremented under the lock by %d children is %s, want %s", counterChildren, got, want)
	}
}

// runChild plays a child role and returns the exit code.
func runChild(role string, open func(string) (lock.Manager, error)) int {
	if err := playChild(role, open); err != nil {
		fmt.Fprintf(os.Stderr, "locktest child %s: %v\n", role, err)
		return 1
	}
	return 0
}

// playChild plays a child role:
//
//   - hold: lock the lock $LOCKTEST_CHILD_ID, print "ready" before Lock and
//     "locked" after, then unlock at the end of input and print "unlocked".
//   - allocate: print "ready", wait for a line, then allocate
//     $LOCKTEST_CHILD_N locks and print their IDs.
//   - rhold: the same as hold with RLock (see playRHold).
//   - free: free the lock $LOCKTEST_CHILD_ID and print "freed".
//   - count: print "ready", wait for a line, then increment the number in
//     the file $LOCKTEST_CHILD_FILE $LOCKTEST_CHILD_N times under the lock
//     $LOCKTEST_CHILD_ID, and print "done".
func playChild(role string, open func(string) (lock.Manager, error)) error {
	if open == nil {
		return errors.New("no open function given to Main")
	}
	m, err := open(os.Getenv(envAddr))
	if err != nil {
		return err
	}
	if c, ok := m.(io.Closer); ok {
		defer c.Close()
	}
	in := bufio.NewReader(os.Stdin)
	await := func() error {
		_, err := in.ReadString('\n')
		return err
	}
	id, _ := strconv.ParseUint(os.Getenv(envID), 10, 32)
	n, _ := strconv.Atoi(os.Getenv(envN))
	switch role {
	case "hold":
		l, err := m.RetrieveLock(uint32(id))
		if err != nil {
			return err
		}
		fmt.Println("ready")
		l.Lock()
		fmt.Println("locked")
		io.Copy(io.Discard, in)
		l.Unlock()
		fmt.Println("unlocked")
	case "allocate":
		fmt.Println("ready")
		if err := await(); err != nil {
			return err
		}
		for range n {
			l, err := m.AllocateLock()
			if err != nil {
				return err
			}
			fmt.Println(l.ID())
		}
	case "rhold":
		return playRHold(m, uint32(id), in)
	case "free":
		l, err := m.RetrieveLock(uint32(id))
		if err != nil {
			return err
		}
		if err := l.Free(); err != nil {
			return err
		}
		fmt.Println("freed")
	case "count":
		l, err := m.RetrieveLock(uint32(id))
		if err != nil {
			return err
		}
		fmt.Println("ready")
		if err := await(); err != nil {
			return err
		}
		file := os.Getenv(envFile)
		var overlaps []string
		for i := range n {
			l.Lock()
			overlap, err := increment(file)
			l.Unlock()
			if err != nil {
				return err
			}
			if overlap != "" {
				overlaps = append(overlaps, fmt.Sprintf("increment %d: %s", i, overlap))
			}
		}
		if len(overlaps) > 0 {
			return fmt.Errorf("another process was in the critical section %d times:\n%s",
				len(overlaps), strings.Join(slices.Compact(overlaps), "\n"))
		}
		fmt.Println("done")
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return nil
}

// increment adds one to the number in file. It marks its critical section
// with a second file, created exclusively, and returns a description of
// what another process did in the critical section at the same time, if
// anything.
func increment(file string) (overlap string, err error) {
	mark := file + ".inside"
	f, err := os.OpenFile(mark, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	switch {
	case errors.Is(err, os.ErrExist):
		overlap = "the critical section was already marked"
	case err != nil:
		return "", err
	default:
		f.Close()
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	v, err := strconv.Atoi(string(b))
	if err != nil {
		overlap = fmt.Sprintf("the counter file held %q", b)
	}
	if err := os.WriteFile(file, []byte(strconv.Itoa(v+1)), 0o600); err != nil {
		return "", err
	}
	if err := os.Remove(mark); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return overlap, nil
}
