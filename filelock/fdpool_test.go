//go:build linux

package filelock

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// childTwoManagers fills Manager A's cache with idle descriptors and the
// rest of a low descriptor limit with other files, then locks through
// Manager B. B's TryLock must succeed and its Lock must not wait: the idle
// descriptors are A's to give back.
func childTwoManagers(a hardenArgs) hardenResult {
	var r hardenResult
	lim := syscall.Rlimit{Cur: a.NoFile, Max: a.NoFile}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		r.Err = err.Error()
		return r
	}
	ma, err := Create(filepath.Join(a.Dir, "a"), 1000, WithMaxOpenFiles(1000))
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer ma.Close()
	mb, err := Create(filepath.Join(a.Dir, "b"), 1000)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer mb.Close()
	defer func() {
		if p := recover(); p != nil {
			r.Err = fmt.Sprint("panic: ", p)
		}
	}()
	// A caches idle descriptors until the process is nearly out...
	for id := range uint32(a.NoFile / 2) {
		l, _ := ma.RetrieveLock(id)
		l.Lock()
		l.Unlock()
		r.Locked++
	}
	// ... and other files take the rest.
	var filler []*os.File
	defer func() {
		for _, f := range filler {
			f.Close()
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		filler = append(filler, f)
	}
	lb, _ := mb.Retrieve(1)
	if !lb.TryLock() {
		r.Err = "B's TryLock on a free lock returned false while A had idle descriptors"
		return r
	}
	lb.Unlock()
	l2, _ := mb.RetrieveLock(2)
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		l2.Lock()
		l2.Unlock()
	}()
	select {
	case p := <-done:
		if p != nil {
			r.Err = fmt.Sprint("B's Lock: ", p)
		}
	case <-time.After(10 * time.Second):
		r.Err = "B's Lock on a free lock still waiting after 10s while A had idle descriptors"
	}
	return r
}

// TestTwoManagersOutOfDescriptors is defect 5 of reliability round two:
// with Manager A's cache holding the process's idle descriptors, Manager
// B's Lock hung forever and its TryLock failed.
func TestTwoManagersOutOfDescriptors(t *testing.T) {
	r := runChild(t, "twomanagers", hardenArgs{Dir: t.TempDir(), NoFile: 64}, nil, "")
	if r.Err != "" {
		t.Fatal(r.Err)
	}
	if r.Locked == 0 {
		t.Fatal("A locked nothing")
	}
}
