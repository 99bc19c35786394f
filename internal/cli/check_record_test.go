//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCheckFreesRecordedID gives the next check the counter file of a
// check killed with its ID still allocated, freed by hand since, or freed
// and then left beyond the capacity by a shrink: the check frees what is
// still allocated and, in every case, removes the file without failing.
func TestCheckFreesRecordedID(t *testing.T) {
	for _, tc := range []struct {
		name     string
		alloc    []uint32 // allocated before the check, as in a capacity of 8
		capacity uint32   // when the check runs
		id       uint32   // the ID recorded
		want     []uint32 // allocated after the check
	}{
		{"allocated", []uint32{2, 5}, 8, 5, []uint32{2}},
		{"freed-by-hand", []uint32{2}, 8, 5, []uint32{2}},
		{"beyond-capacity", []uint32{2}, 4, 5, []uint32{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, m := newDir(t, 8)
			for _, id := range tc.alloc {
				if _, err := m.AllocateAndRetrieveLock(id); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Resize(tc.capacity); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, strings.Replace(counterPattern, "*", "killed", 1))
			writeRecord(t, name, tc.id)
			if err := freeDeadChecks(m); err != nil {
				t.Errorf("freeDeadChecks: %v", err)
			}
			if _, err := os.Lstat(name); err == nil {
				t.Error("counter file kept, want it removed")
			}
			if ids, err := m.Allocated(); err != nil || !slices.Equal(ids, tc.want) {
				t.Errorf("allocated %v, %v; want %v", ids, err, tc.want)
			}
		})
	}
}

// writeRecord writes, at name, the counter file of a one-process check
// that recorded id and was killed.
func writeRecord(t *testing.T, name string, id uint32) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(counterSize(1))); err != nil {
		t.Fatal(err)
	}
	if err := record(f, id); err != nil {
		t.Fatal(err)
	}
}
