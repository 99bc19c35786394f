package cli

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

// A check allocates a lock ID for its run. So that a check killed with
// SIGKILL does not leave that ID allocated for ever, its counter file
// doubles as the record of the allocation: the ID is written into it,
// tagged with recordTag, and the check and each of its workers hold a
// shared flock(2) on the file for as long as they run. A later check that
// finds a counter file whose record is set and on which it can take an
// exclusive flock knows that no process of that check is left, and frees
// the ID. The lock, not a PID, says who is alive: it is released by the
// kernel when the last holder dies, and a PID can be reused.
//
// A user's allocation is never taken for a check's: only a counter file
// with the tag names an ID, and the tag is cleared, under the exclusive
// lock or by the check itself, before the ID is freed, so that a record
// can never outlive the allocation it names and free someone else's.
//
// One window remains: between the registry's update in AllocateLock and
// the write of the record, a few microseconds, a SIGKILL leaves the ID
// allocated, as it did before records.

// recordTag marks the record field of a counter file as naming a lock ID:
// the high half of the field, with the ID in the low half.
const recordTag = 0x6c6b6463 // "lkdc"

// record writes id into the counter file f as the ID the check allocated.
func record(f *os.File, id uint32) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], recordTag<<32|uint64(id))
	_, err := f.WriteAt(b[:], offRecord)
	return err
}

// clearRecord erases the record of the counter file f, before its ID is
// freed.
func clearRecord(f *os.File) error {
	var b [8]byte
	_, err := f.WriteAt(b[:], offRecord)
	return err
}

// recorded reads the ID recorded in the counter file f; ok is false if
// none is, as in a file too short to hold a record: one whose check was
// killed before it gave the file its size.
func recorded(f *os.File) (id uint32, ok bool, err error) {
	var b [8]byte
	if _, err := f.ReadAt(b[:], offRecord); err == io.EOF {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	v := binary.LittleEndian.Uint64(b[:])
	return uint32(v), v>>32 == recordTag, nil
}

// staleCounterAge is how long a counter file without a record must have
// gone unwritten before a check that can lock it removes it: a check
// creates its counter file, then locks it, in microseconds.
const staleCounterAge = time.Minute

// freeDeadChecks frees the IDs that checks killed before they could free
// them allocated in m's directory, and removes their counter files. A
// counter file of a check still running, or of one whose workers still
// run, is locked and left alone. One without a record, of a check killed
// before it allocated, is removed once it is staleCounterAge old; until
// then it may be a check's that has not locked it yet. filelock's cleaner
// of temporary names leaves counter files to check.
func freeDeadChecks(m *filelock.Manager) error {
	names, err := filepath.Glob(filepath.Join(m.Dir(), counterPattern))
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := freeDeadCheck(m, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// freeDeadCheck is freeDeadChecks for one counter file.
func freeDeadCheck(m *filelock.Manager, name string) error {
	f, err := openCounter(name)
	if err != nil {
		// Removed meanwhile by its check, or another; in a shared
		// directory, another member's, which that member's next check
		// frees; or a symlink or directory planted at the name, which
		// must not stop every check.
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil // a FIFO or device planted at the name
	}
	free, err := tryLockExclusive(f)
	if err != nil || !free {
		return err
	}
	id, ok, err := recorded(f)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if !ok {
		if fi, err := f.Stat(); err == nil && time.Since(fi.ModTime()) >= staleCounterAge {
			return removeSame(f, name)
		}
		return nil
	}
	// Cleared first: a recovery killed between the two leaves the ID
	// allocated, never a record that could free it once it is reused.
	if err := clearRecord(f); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	l, err := m.RetrieveLock(id)
	if err == nil {
		err = l.Free()
	}
	switch {
	case err == nil:
		fmt.Fprintf(stderr, "lockdir: check: freed lock %d, left allocated by a check that was killed\n", id)
	case errors.Is(err, lock.ErrNotAllocated): // freed by hand already
	case errors.Is(err, lock.ErrInvalidID):
		// Freed by hand, then left beyond the capacity by a shrink
		// (resize refuses allocated IDs): nothing is left to free.
	default:
		return fmt.Errorf("check: freeing lock %d of a check that was killed: %w", id, err)
	}
	return removeSame(f, name)
}

// removeSame removes name if it is still the file f.
func removeSame(f *os.File, name string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if li, err := os.Lstat(name); err == nil && os.SameFile(fi, li) {
		return os.Remove(name)
	}
	return nil
}
