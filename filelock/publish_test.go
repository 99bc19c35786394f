//go:build linux

package filelock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublishDirStartsOverWhenCleanedAway checks that a directory being
// published, whose temporary name another member's Open removed as stale
// between its mkdir and its open (a creator stalled for a minute), is made
// again rather than given up with ENOENT.
func TestPublishDirStartsOverWhenCleanedAway(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "locks")
	removed := 0
	testStep = func(s string) {
		if s != "dir-made" || removed > 0 {
			return
		}
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				if err := os.Remove(filepath.Join(parent, e.Name())); err == nil {
					removed++
				}
			}
		}
	}
	defer func() { testStep = nil }()
	m, err := OpenOrCreate(dir, 16, WithSharedGroup(os.Getgid()))
	if removed == 0 {
		t.Fatal("the test removed no temporary directory")
	}
	if err != nil {
		t.Fatalf("OpenOrCreate after its temporary directory was cleaned away: %v", err)
	}
	m.Close()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o770 || fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("the lock directory: %v, %v", fi, err)
	}
}
