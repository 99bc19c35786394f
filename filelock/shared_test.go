//go:build linux

package filelock

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockdir/lockdir/internal/childproc"
)

// Shared mode with two real users in a real group: members starting at
// once, and a creator killed at every step of creating the lock directory,
// locks/, registry.lock and lock files. The children are this test binary
// re-executed as each user (TestHardeningChild, role "member").

// memberArgs are what childMember does.
type memberArgs struct {
	Dir      string
	GID      int
	Locks    int           // lock IDs 0..Locks-1 to lock and unlock, creating their files
	KillAt   int           // SIGKILL itself at this creation step (counting from 0); -1 for never
	Pause    time.Duration // sleep at every creation step, widening every window
	InPlace  bool          // create in place, as where hard links and renameat2 are missing
	Clean    bool          // treat every temporary name as stale
	WaitOpen bool          // wait for stdin to close before starting
}

type memberResult struct {
	Err   string   `json:",omitempty"`
	Steps []string `json:",omitempty"`
}

func childMember(a memberArgs) memberResult {
	var r memberResult
	syscall.Umask(0o077) // the most restrictive umask a member may have
	if a.WaitOpen {
		io.Copy(io.Discard, os.Stdin)
	}
	if a.Clean {
		staleTempAge = 0
	}
	forceInPlace = a.InPlace
	testStep = func(s string) {
		if len(r.Steps) == a.KillAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		r.Steps = append(r.Steps, s)
		time.Sleep(a.Pause)
	}
	m, err := OpenOrCreate(a.Dir, 64, WithSharedGroup(a.GID))
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer m.Close()
	for id := range uint32(a.Locks) {
		l, err := m.Retrieve(id)
		if err == nil {
			err = lockUnlock(l)
		}
		if err != nil {
			r.Err = fmt.Sprintf("lock %d: %v", id, err)
			return r
		}
	}
	if _, err := m.AllocateLock(); err != nil {
		r.Err = err.Error()
	}
	return r
}

// lockUnlock locks and unlocks l, turning Lock's panic into an error.
func lockUnlock(l *Locker) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	l.Lock()
	l.Unlock()
	return nil
}

// startMember starts a child running childMember as a user.
func startMember(t *testing.T, exe string, a memberArgs, cred *syscall.Credential) *childproc.Child {
	t.Helper()
	return childproc.Start(t, hardenChild("member", a, cred, exe))
}

// waitMember ends the input of mb, if not already, and returns its result,
// and whether SIGKILL ended it.
func waitMember(t testing.TB, mb *childproc.Child) (r memberResult, killed bool) {
	t.Helper()
	mb.CloseStdin()
	if childproc.Killed(mb.Err()) {
		return r, true
	}
	err := mb.Result(&r) // on failure, it holds what mb printed
	if err == nil {
		return r, false
	}
	t.Fatalf("%v (exit: %v); stderr:\n%s", err, mb.Err(), mb.Stderr())
	return r, false
}

// TestWaitMemberMessage checks that when a member prints no result,
// waitMember's message holds what it printed: here, the failure of the
// child test, which goes to standard output.
func TestWaitMemberMessage(t *testing.T) {
	r := childproc.NewRecorder(t)
	mb := childproc.Start(r, hardenChild("nosuchrole", hardenArgs{}, nil, ""))
	fails, _ := r.Run(func() { waitMember(r, mb) })
	if len(fails) != 1 || !strings.Contains(fails[0], `unknown role "nosuchrole"`) {
		t.Errorf("waitMember of a child that printed no result reported %q, want its output", fails)
	}
}

func runMember(t *testing.T, exe string, a memberArgs, cred *syscall.Credential) (memberResult, bool) {
	t.Helper()
	return waitMember(t, startMember(t, exe, a, cred))
}

// newGroup creates a throwaway group with the given users as members,
// removed at the end of the test.
func newGroup(t *testing.T, users ...tempUser) int {
	t.Helper()
	name := fmt.Sprintf("ldg%d%d", os.Getpid()%100000, time.Now().UnixNano()%1000)
	if out, err := exec.Command("groupadd", name).CombinedOutput(); err != nil {
		t.Skipf("groupadd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("groupdel", name).CombinedOutput(); err != nil {
			t.Errorf("groupdel %s: %v: %s", name, err, out)
		}
	})
	for _, u := range users {
		if out, err := exec.Command("usermod", "-a", "-G", name, u.name).CombinedOutput(); err != nil {
			t.Fatalf("usermod: %v: %s", err, out)
		}
	}
	g, err := exec.Command("getent", "group", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	gid, err := strconv.Atoi(strings.Split(string(g), ":")[2])
	if err != nil {
		t.Fatal(err)
	}
	return gid
}

// members sets up two users in one group, a copy of the test binary they
// can run, and a parent directory they may both create lock directories
// in.
func members(t *testing.T) (a, b *syscall.Credential, gid int, exe, base string) {
	t.Helper()
	ua, ub := newUser(t), newUser(t)
	gid = newGroup(t, ua, ub)
	exe = publicBinary(t)
	base = publicDir(t)
	if err := os.Chown(base, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o770); err != nil {
		t.Fatal(err)
	}
	cred := func(u tempUser) *syscall.Credential {
		c := u.cred()
		c.Groups = []uint32{uint32(gid)}
		return c
	}
	return cred(ua), cred(ub), gid, exe, base
}

// tempNames lists the temporary names in dir.
func tempNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if isTempName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestSharedCreatorKilled kills a member at every step of creating a
// shared lock directory. Each time, the other member must then open it,
// lock, and allocate, and the leftovers must be cleaned away.
func TestSharedCreatorKilled(t *testing.T) {
	credA, credB, gid, exe, base := members(t)
	const locks = 2
	trace, _ := runMember(t, exe, memberArgs{Dir: filepath.Join(base, "trace"), GID: gid, Locks: locks, KillAt: -1}, credA)
	if trace.Err != "" {
		t.Fatal(trace.Err)
	}
	if len(trace.Steps) < 5*3 {
		t.Fatalf("only %d creation steps: %v", len(trace.Steps), trace.Steps)
	}
	t.Logf("creation steps: %v", trace.Steps)
	for i, s := range trace.Steps {
		dir := filepath.Join(base, fmt.Sprintf("kill%d", i))
		if _, killed := runMember(t, exe, memberArgs{Dir: dir, GID: gid, Locks: locks, KillAt: i}, credA); !killed {
			t.Fatalf("member A was not killed at step %d (%s)", i, s)
		}
		// B comes at once, while A's leftovers are fresh and stay: they
		// must not get in its way (nor make the directory look foreign).
		r, killed := runMember(t, exe, memberArgs{Dir: dir, GID: gid, Locks: locks, KillAt: -1}, credB)
		if killed || r.Err != "" {
			t.Errorf("A killed at step %d (%s): B: %s", i, s, r.Err)
			continue
		}
		if r, _ := runMember(t, exe, memberArgs{Dir: dir, GID: gid, Locks: locks, KillAt: -1}, credA); r.Err != "" {
			t.Errorf("A killed at step %d (%s): A again: %s", i, s, r.Err)
		}
		// Once they are stale, the next member removes them.
		if r, _ := runMember(t, exe, memberArgs{Dir: dir, GID: gid, Locks: locks, KillAt: -1, Clean: true}, credB); r.Err != "" {
			t.Errorf("A killed at step %d (%s): B cleaning: %s", i, s, r.Err)
		}
		if left := tempNames(t, dir); len(left) > 0 {
			t.Errorf("A killed at step %d (%s): leftovers after B cleaned: %v", i, s, left)
		}
		// Next to the directory, a temporary directory A made for it stays
		// until the directory is next created (see docs/design.md); it
		// must be empty, so that it holds nothing anyone could use.
		for _, name := range tempNames(t, base) {
			if ents, err := os.ReadDir(filepath.Join(base, name)); err != nil || len(ents) > 0 {
				t.Errorf("A killed at step %d (%s): leftover %s next to the directory: %v, %v", i, s, name, ents, err)
			}
		}
	}
}

// TestSharedStartAtOnce starts two members at once, many times, on a
// directory that does not exist yet, with a pause at every creation step
// that widens each window. Both must succeed every time: nobody may see a
// file or directory before it has its group and mode.
func TestSharedStartAtOnce(t *testing.T) {
	credA, credB, gid, exe, base := members(t)
	rounds := 30
	if testing.Short() {
		rounds = 5
	}
	for _, inPlace := range []bool{false, true} {
		t.Run(fmt.Sprintf("inPlace=%v", inPlace), func(t *testing.T) {
			for round := range rounds {
				dir := filepath.Join(base, fmt.Sprintf("inplace%v-%d", inPlace, round))
				a := memberArgs{Dir: dir, GID: gid, Locks: 3, KillAt: -1, Pause: 2 * time.Millisecond, InPlace: inPlace, WaitOpen: true}
				ma, mb := startMember(t, exe, a, credA), startMember(t, exe, a, credB)
				time.Sleep(20 * time.Millisecond) // both are waiting on stdin
				ma.CloseStdin()
				mb.CloseStdin()
				ra, _ := waitMember(t, ma)
				rb, _ := waitMember(t, mb)
				if ra.Err != "" || rb.Err != "" {
					t.Errorf("round %d: A: %q; B: %q", round, ra.Err, rb.Err)
				}
				want := "dir-renamed"
				if inPlace {
					want = "dir-made-in-place"
				}
				if !slices.Contains(ra.Steps, want) && !slices.Contains(rb.Steps, want) {
					t.Errorf("round %d: neither member made a directory by %s: %v, %v", round, want, ra.Steps, rb.Steps)
				}
			}
		})
	}
}
