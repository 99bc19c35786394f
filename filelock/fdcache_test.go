//go:build linux

package filelock

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fdTableSize reads the size of this process's descriptor table, FDSize in
// /proc/self/status.
func fdTableSize(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("FDSize:")); ok {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no FDSize in /proc/self/status")
	return 0
}

// TestColdTouchKeepsTableSmall is issue 11's finding: a process that locked
// 2,048 IDs once each kept every descriptor, so the kernel grew its
// descriptor table six times, each growth waiting for an RCU grace period
// (about 10 ms here), and the process slept for most of its run. IDs locked
// once now close each other's descriptors; IDs locked again stay cached.
func TestColdTouchKeepsTableSmall(t *testing.T) {
	m, err := Create(filepath.Join(t.TempDir(), "locks"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	before := fdTableSize(t)
	if before >= 1024 {
		t.Skipf("descriptor table already has %d slots", before)
	}
	touch := func(from, to uint32) {
		for id := from; id < to; id++ {
			l, err := m.RetrieveLock(id)
			if err != nil {
				t.Fatal(err)
			}
			l.Lock()
			l.Unlock()
		}
	}
	touch(0, 2048)
	if after := fdTableSize(t); after > max(before, 128) {
		t.Errorf("locking 2,048 IDs once each grew the descriptor table from %d to %d slots", before, after)
	}
	// Locked a second time, an ID's descriptor stays open.
	touch(0, 200)
	touch(0, 200)
	m.cache.mu.Lock()
	n := len(m.cache.open)
	m.cache.mu.Unlock()
	if n < 200 {
		t.Errorf("after locking 200 IDs twice, %d descriptors are cached, want at least 200", n)
	}
}

// TestProbationForgetsReopened checks that a descriptor evicted while on
// probation and opened again, which admits it to the cache, is not closed
// later as if it were still on probation.
func TestProbationForgetsReopened(t *testing.T) {
	m, err := Create(filepath.Join(t.TempDir(), "locks"), 4096, WithMaxOpenFiles(1))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	touch := func(id uint32) *Locker {
		l, err := m.Retrieve(id)
		if err != nil {
			t.Fatal(err)
		}
		l.Lock()
		l.Unlock()
		return l
	}
	a := touch(0)
	touch(1) // the cache bound (1) evicts 0, which stays on the probation list
	touch(0) // opened again: admitted to the cache
	if a.st.opens != 2 || a.st.fd < 0 {
		t.Fatalf("lock 0 after its second open: opens %d, fd %d", a.st.opens, a.st.fd)
	}
	m.cache.mu.Lock()
	m.cache.endProbation(len(m.cache.probation))
	fd := a.st.fd
	m.cache.mu.Unlock()
	if fd < 0 {
		t.Error("ending probation closed the descriptor of a lock opened twice")
	}
}
