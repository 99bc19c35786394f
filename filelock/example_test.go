//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

func Example() {
	tmp, err := os.MkdirTemp("", "lockdir-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	m, err := filelock.OpenOrCreate(filepath.Join(tmp, "locks"), filelock.DefaultNumLocks)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	l, err := m.AllocateLock()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("allocated lock", l.ID())

	l.Lock()
	// ... work that no other process may do at the same time ...
	l.Unlock()

	if err := l.Free(); err != nil {
		log.Fatal(err)
	}
	n, _ := m.AvailableLocks()
	fmt.Println("available:", *n)
	// Output:
	// allocated lock 0
	// available: 2048
}

func ExampleLocker_TryLock() {
	tmp, err := os.MkdirTemp("", "lockdir-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	m, err := filelock.Create(filepath.Join(tmp, "locks"), 16)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	la, _ := m.Retrieve(3)
	lb, _ := m.Retrieve(3)

	fmt.Println("first TryLock:", la.TryLock())
	fmt.Println("second TryLock:", lb.TryLock())

	// LockContext gives up when its context is done.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	fmt.Println("LockContext:", lb.LockContext(ctx))

	la.Unlock()
	fmt.Println("LockContext after Unlock:", lb.LockContext(context.Background()))
	lb.Unlock()
	// Output:
	// first TryLock: true
	// second TryLock: false
	// LockContext: context deadline exceeded
	// LockContext after Unlock: <nil>
}

func ExampleManager_LockPath() {
	flock, err := exec.LookPath("flock")
	if err != nil {
		fmt.Println("flock(1) exits with 1 while the lock is held")
		return // no util-linux here
	}
	tmp, err := os.MkdirTemp("", "lockdir-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	m, err := filelock.Create(filepath.Join(tmp, "locks"), 16)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	l, _ := m.RetrieveLock(7)
	l.Lock()
	// A shell script takes the same lock with flock(1) on LockPath.
	err = exec.Command(flock, "--nonblock", m.LockPath(7), "true").Run()
	if ee, ok := err.(*exec.ExitError); ok {
		fmt.Println("flock(1) exits with", ee.ExitCode(), "while the lock is held")
	}
	l.Unlock()
	// Output:
	// flock(1) exits with 1 while the lock is held
}
