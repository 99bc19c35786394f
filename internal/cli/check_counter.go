package cli

import (
	"encoding/binary"
	"fmt"
	"os"
)

// The counter file: a shared counter and the PID of the process inside the
// critical section, both only touched under the lock; the record of the
// lock ID the check allocated (check_record.go), written by the check only;
// then one slot per worker with its own increments and violations, written
// by that worker only.
const (
	offCounter  = 0
	offOwner    = 8
	offRecord   = 16
	offSlots    = 24
	slotSize    = 16
	offSlotN    = 0
	offSlotViol = 8
)

// counterSize is the size of the counter file of a check with procs workers.
func counterSize(procs int) int { return offSlots + slotSize*procs }

// slotOffset is where worker i's slot starts in the counter file.
func slotOffset(i int) int64 { return int64(offSlots + slotSize*i) }

// counterPattern names the counter file with the prefix filelock gives
// its own temporary files (publish.go), so that a counter left behind by a
// check killed with SIGKILL does not make the directory look foreign to a
// later 'lockdir init'. filelock's cleaner of temporary names leaves it
// alone (it may record a lock ID to free): the next check removes it
// (check_record.go).
const counterPattern = ".lockdir-tmp.check-*.counter"

// createCounter makes the counter file of a check with procs workers in
// dir, zeroed, and takes the shared lock that says the check is alive
// (check_record.go). The caller removes it.
func createCounter(dir string, procs int) (*os.File, error) {
	f, err := os.CreateTemp(dir, counterPattern)
	if err != nil {
		return nil, fmt.Errorf("check: creating the counter file: %w", err)
	}
	err = lockShared(f)
	if err == nil {
		err = f.Truncate(int64(counterSize(procs)))
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("check: %w", err)
	}
	return f, nil
}

// counts is what the counter file of a check says, as the parent reads it.
type counts struct {
	counter    uint64   // the shared counter
	perProcess []uint64 // each worker's own count of its increments
	violations uint64   // the sum of the violations the workers saw
}

// readCounts reads the counter file f of a check with procs workers.
func readCounts(f *os.File, procs int) (counts, error) {
	buf := make([]byte, counterSize(procs))
	if _, err := f.ReadAt(buf, 0); err != nil {
		return counts{}, err
	}
	c := counts{counter: binary.LittleEndian.Uint64(buf[offCounter:]), perProcess: make([]uint64, procs)}
	for i := range procs {
		slot := buf[slotOffset(i):]
		c.perProcess[i] = binary.LittleEndian.Uint64(slot[offSlotN:])
		c.violations += binary.LittleEndian.Uint64(slot[offSlotViol:])
	}
	return c, nil
}

// counterFile is a worker's access to the counter file. Its get and put
// panic on an I/O error, which checkWorker recovers: in the critical
// section, the error has nowhere better to go.
type counterFile struct {
	f *os.File
	b [8]byte
}

func (c *counterFile) get(off int64) uint64 {
	if _, err := c.f.ReadAt(c.b[:], off); err != nil {
		panic(err)
	}
	return binary.LittleEndian.Uint64(c.b[:])
}

func (c *counterFile) put(off int64, v uint64) {
	binary.LittleEndian.PutUint64(c.b[:], v)
	if _, err := c.f.WriteAt(c.b[:], off); err != nil {
		panic(err)
	}
}
