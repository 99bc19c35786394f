//go:build linux

package filelock

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fdAccessMode returns the O_ACCMODE bits of this process's descriptor fd,
// from /proc/self/fdinfo.
func fdAccessMode(t *testing.T, fd int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", strconv.Itoa(fd)))
	if err != nil {
		t.Skipf("no fdinfo: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(flags) & syscall.O_ACCMODE
		}
	}
	t.Fatalf("fdinfo of %d has no flags: %s", fd, b)
	return -1
}

// TestLockFilesOpenForWriting checks that every descriptor lockdir flocks
// is open for writing: NFSv4 answers an exclusive flock on a read-only
// descriptor with EBADF (nfs4_proc_lock), so read-only lock files made
// Lock panic and Open fail there. See docs/design.md, NFS.
func TestLockFilesOpenForWriting(t *testing.T) {
	for _, opts := range [][]Option{nil, {WithSharedGroup(os.Getgid())}} {
		m, err := Create(filepath.Join(t.TempDir(), "locks"), 16, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if got := fdAccessMode(t, m.masterFD); got != syscall.O_RDWR {
			t.Errorf("registry.lock open with access mode %#o, want O_RDWR", got)
		}
		for _, id := range []uint32{0, 7} {
			if id == 7 {
				// A lock file that exists before this Manager opens it.
				if err := os.WriteFile(m.LockPath(id), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			l, _ := m.Retrieve(id)
			l.Lock()
			fd := l.st.fd
			if got := fdAccessMode(t, fd); got != syscall.O_RDWR {
				t.Errorf("lock file %d open with access mode %#o, want O_RDWR", id, got)
			}
			l.Unlock()
		}
	}
}
