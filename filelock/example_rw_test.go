//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/lockdir/lockdir/filelock"
)

// Readers share a lock, in this process and with other processes (and
// with flock -s on its LockPath); a writer waits until the last one is
// done.
func ExampleLocker_RLock() {
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
	l, err := m.Retrieve(3)
	if err != nil {
		log.Fatal(err)
	}

	l.RLock()
	fmt.Println("second reader:", l.TryRLock())
	fmt.Println("writer:", l.TryLock())
	l.RUnlock()
	l.RUnlock()

	// The readers are done, so a writer gets the lock. Had it been busy,
	// LockContext would have waited in the kernel until the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.LockContext(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("writer after the readers: true")
	l.Unlock()
	// Output:
	// second reader: true
	// writer: false
	// writer after the readers: true
}
