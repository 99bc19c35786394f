//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSharedRefusedDirectoryUntouched (reliability round two, found by
// review): in shared mode, Open, OpenOrCreate and Create ran cleanLeftovers
// on a directory before they decided whether it was a lock directory at
// all, so a foreign directory they then refused lost every entry named
// .lockdir-tmp.* older than staleTempAge (a minute). Issue 7, defect 6, says a refused
// directory is left exactly as it was; TestRefusedDirectoryUntouched
// checks only private mode. The test sets staleTempAge to 0 to stand for
// a file a minute old.
func TestSharedRefusedDirectoryUntouched(t *testing.T) {
	old := staleTempAge
	staleTempAge = 0
	defer func() { staleTempAge = old }()
	gid := os.Getgid()
	for name, open := range map[string]func(dir string) (*Manager, error){
		"Create":       func(dir string) (*Manager, error) { return Create(dir, 8, WithSharedGroup(gid)) },
		"OpenOrCreate": func(dir string) (*Manager, error) { return OpenOrCreate(dir, 8, WithSharedGroup(gid)) },
		"Open":         func(dir string) (*Manager, error) { return Open(dir, WithSharedGroup(gid)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"notes.txt", tmpPrefix + "draft"} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("mine"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			past := time.Now().Add(-time.Hour)
			os.Chtimes(dir, past, past)
			before := snapshot(t, dir)
			m, err := open(dir)
			if err == nil {
				m.Close()
				t.Fatalf("%s made a lock directory of a directory holding notes.txt", name)
			}
			checkSnapshot(t, name, dir, before)
		})
	}
}
