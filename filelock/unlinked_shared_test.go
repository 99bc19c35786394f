//go:build linux

package filelock_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lockdir/lockdir/filelock"
)

// TestUnlinkedSharedCreator (reliability round two, found by review): in shared mode a lock
// file (and registry.lock) is created under a temporary name in the lock
// directory and linked into place (publish.go), and the creator keeps the
// descriptor it opened through the temporary name. Once the temporary name
// is unlinked, /proc/PID/fd shows that descriptor as
// "DIR/.lockdir-tmp.N.xxx (deleted)" whatever happens to locks/N. When a
// cleaner then deletes locks/N, the creator still holds the lock, but
// Unlinked (and so lockdir status and check) finds nothing: isLockName
// accepts only names under locks/ and registry.lock. The private row,
// where the file is created in place, passes.
func TestUnlinkedSharedCreator(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []filelock.Option
	}{
		{"private", nil},
		{"shared", []filelock.Option{filelock.WithSharedGroup(os.Getgid())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "locks")
			m, err := filelock.Create(dir, 16, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			l, err := m.Allocate()
			if err != nil {
				t.Fatal(err)
			}
			l.Lock() // creates locks/0, and holds it
			defer l.Unlock()
			if err := os.Remove(m.LockPath(l.ID())); err != nil {
				t.Fatal(err)
			}
			m2, err := filelock.Open(dir, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			us, err := m2.Unlinked()
			if err != nil {
				t.Fatal(err)
			}
			if len(us) != 1 || us[0].PID != os.Getpid() || us[0].Waiting {
				t.Errorf("lock file %s deleted while this process holds it: Unlinked = %+v, want this process as its holder", m.LockPath(l.ID()), us)
			} else if got := us[0].Path; filepath.Base(got) != "0" || filepath.Base(filepath.Dir(got)) != "locks" {
				t.Errorf("Unlinked names %s, want the lock file, locks/0", got)
			}
		})
	}
}
