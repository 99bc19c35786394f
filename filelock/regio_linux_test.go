package filelock

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The multi-user regression tests of the registry's I/O: they need real
// second users (newUser, in hardening_test.go), so Linux and root.

func init() {
	regioRoles["attack"] = childAttack
	regioRoles["resize"] = childResize
}

// TestReplacePlantedSymlinks has a second user, a member of the shared
// group, plant symlinks to a private file of the resizing user in a loop
// while that user resizes, at every name a replacement uses or used:
// registry.tmp (renaming a fresh symlink over it, or unlinking what is
// there and making one, as `ln -sf` does), and the resizing user's staging
// directory (moved away and replaced by a symlink to a directory of the
// attacker's, or replaced by such a directory, holding a symlink named
// registry.tmp). The target must never change mode, owner or contents, and
// the registry must never, at any instant, be anything but a regular file
// of the resizing user.
func TestReplacePlantedSymlinks(t *testing.T) {
	u := newUser(t)
	exe := publicBinary(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("private"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := statOf(t, secret)
	dir := filepath.Join(publicDir(t), "locks")
	m, err := Create(dir, 100, WithSharedGroup(u.gid))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	cmd := regioChild(t, exe, "attack", "DIR="+dir, "TARGET="+secret, "STAGING="+stagingName(os.Geteuid()), "FOR=2s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred()}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var childErr error
	exited := make(chan struct{})
	go func() {
		childErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() { // before userdel, which refuses a user with processes
		cmd.Process.Kill()
		<-exited
	})

	// The registry is watched at every instant, not only between resizes.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	wg.Go(func() {
		for !stop.Load() {
			fi, err := lstatAt(atFDCWD, filepath.Join(dir, registryName))
			if err != nil || !fi.isReg() || fi.uid != uint32(os.Geteuid()) {
				bad.Store(fmt.Sprintf("registry: %+v, %v", fi, err))
				return
			}
		}
	})
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()

	resizes, failed := 0, 0
loop:
	for ; ; resizes++ {
		select {
		case <-exited:
			break loop
		default:
		}
		n := uint32(200 + resizes%2*100)
		rerr := m.Resize(n)
		if rerr != nil {
			failed++
			if failed <= 3 {
				t.Logf("Resize(%d): %v", n, rerr)
			}
		}
		if got := statOf(t, secret); got != want {
			t.Fatalf("after %d resizes, the symlink target is %v, was %v", resizes+1, got, want)
		}
		if c, err := m.Capacity(); err != nil || rerr == nil && c != n {
			t.Fatalf("after Resize(%d): capacity %d, %v", n, c, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if childErr != nil {
		t.Fatalf("attacker: %v\n%s\n%s", childErr, out.Bytes(), stderr.Bytes())
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "private" {
		t.Errorf("the symlink target holds %q, %v", b, err)
	}
	if s := bad.Load(); s != nil {
		t.Errorf("while resizing under attack: %v", s)
	}
	planted, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
	t.Logf("%d resizes, %d of them failed, against %s planted symlinks", resizes, failed, planted)
	if resizes-failed < 10 {
		t.Errorf("only %d of %d resizes succeeded", resizes-failed, resizes)
	}
}

// Child processes of these tests and of create_test.go re-execute the test
// binary (exe) with -test.run=^TestRegIOChild$ in a role of namespace
// "regio", their arguments given as NAME=value (regioChild, regioArg).

// TestReplaceBySecondMember has another member of the shared group, a real
// second user, resize and clear a directory that root created: its own
// staging directory is made and removed in a directory it does not own,
// and root then reads the member's registry.
func TestReplaceBySecondMember(t *testing.T) {
	u := newUser(t)
	exe := publicBinary(t)
	dir := filepath.Join(publicDir(t), "locks")
	m, err := Create(dir, 100, WithSharedGroup(u.gid))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{3, 4} {
		if _, err := m.AllocateAndRetrieveLock(id); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	cmd := regioChild(t, exe, "resize", "DIR="+dir, "GID="+strconv.Itoa(u.gid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred()}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("member's Resize and FreeAllLocks: %v\n%s", err, out)
	}
	m, err = Open(dir, WithSharedGroup(u.gid))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := managerState(t, m); !got.equal(regState{exists: true, capacity: 300}) {
		t.Errorf("after the member's Resize(300) and FreeAllLocks: %v", got)
	}
	fi, err := os.Lstat(filepath.Join(dir, registryName))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != u.uid || int(st.Gid) != u.gid || fi.Mode().Perm() != 0o660 {
		t.Errorf("the member's registry is %v %d:%d, want 0660 %d:%d", fi.Mode(), st.Uid, st.Gid, u.uid, u.gid)
	}
	if _, err := os.Lstat(filepath.Join(dir, stagingName(u.uid))); err == nil {
		t.Errorf("the member's staging directory was left behind")
	}
}

// childResize opens DIR shared with group GID, resizes it to 300 locks
// and frees every lock.
func childResize(t *testing.T) {
	gid, err := strconv.Atoi(regioArg("GID"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(regioArg("DIR"), WithSharedGroup(gid))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Resize(300); err != nil {
		t.Fatal(err)
	}
	if err := m.FreeAllLocks(); err != nil {
		t.Fatal(err)
	}
}

// childAttack is the attacker of TestReplacePlantedSymlinks, run as the
// second user. It prints how many symlinks it planted.
func childAttack(t *testing.T) {
	dir := regioArg("DIR")
	target := regioArg("TARGET")
	staging := filepath.Join(dir, regioArg("STAGING"))
	d, err := time.ParseDuration(regioArg("FOR"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, tmpName)
	// A directory of the attacker's, holding registry.tmp -> target.
	evil := filepath.Join(dir, "evil")
	if err := os.Mkdir(evil, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(evil, tmpName)); err != nil {
		t.Fatal(err)
	}
	planted := 0
	ok := func(err error) {
		if err == nil {
			planted++
		}
	}
	for i, end := 0, time.Now().Add(d); time.Now().Before(end); i++ {
		link := filepath.Join(dir, "planted")
		switch i % 4 {
		case 0:
			if os.Symlink(target, link) == nil {
				ok(os.Rename(link, tmp))
			}
		case 1:
			os.Remove(tmp)
			ok(os.Symlink(target, tmp))
		case 2:
			os.Rename(staging, filepath.Join(dir, "stolen"+strconv.Itoa(i)))
			os.Remove(staging)
			ok(os.Symlink(evil, staging))
		case 3:
			os.Remove(staging)
			if os.Mkdir(staging, 0o777) == nil {
				ok(os.Symlink(target, filepath.Join(staging, tmpName)))
			}
		}
	}
	fmt.Println(planted)
}

// fileStat is what an attack on a file's permissions would change.
type fileStat struct {
	mode     os.FileMode
	uid, gid uint32
}

func (s fileStat) String() string {
	return strconv.FormatUint(uint64(s.mode.Perm()), 8) + " " + strconv.Itoa(int(s.uid)) + ":" + strconv.Itoa(int(s.gid))
}

func statOf(t *testing.T, path string) fileStat {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileStat{fi.Mode(), st.Uid, st.Gid}
}
