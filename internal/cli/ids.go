package cli

import (
	"fmt"
	"strconv"

	"github.com/lockdir/lockdir/filelock"
)

// parseID parses a lock ID given on the command line. It checks the syntax
// and the absolute limit, filelock.MaxLocks; checkIDs checks it against the
// directory's capacity.
func parseID(cmd, s string) (uint32, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, usageError(cmd, "lock ID %s is out of range: IDs are below %d", s, filelock.MaxLocks)
		}
		return 0, usageError(cmd, "lock ID %q is not a number: IDs are 0, 1, 2, ...", s)
	}
	if n < 0 {
		return 0, usageError(cmd, "lock ID %s is negative: IDs are 0, 1, 2, ...", s)
	}
	if n >= filelock.MaxLocks {
		return 0, usageError(cmd, "lock ID %s is out of range: IDs are below %d", s, filelock.MaxLocks)
	}
	return uint32(n), nil
}

// parseIDs parses lock IDs as parseID does.
func parseIDs(cmd string, args []string) ([]uint32, error) {
	ids := make([]uint32, 0, len(args))
	for _, a := range args {
		id, err := parseID(cmd, a)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// openForIDs opens the lock directory as openManager does and checks that
// every ID in ids is below its capacity, closing it again if one is not.
func (g *globals) openForIDs(create bool, ids []uint32) (*filelock.Manager, error) {
	m, err := g.openManager(create)
	if err != nil {
		return nil, err
	}
	if _, err := checkIDs(m, ids); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// checkIDs checks that every ID is below the directory's capacity.
func checkIDs(m *filelock.Manager, ids []uint32) (capacity uint32, err error) {
	capacity, err = m.Capacity()
	if err != nil {
		return 0, dirError(m.Dir(), err)
	}
	for _, id := range ids {
		if id >= capacity {
			return 0, errorf(exitUsage,
				fmt.Sprintf("grow the directory with 'lockdir resize %d' if you need this ID", id+1),
				"lock ID %d is out of range: %s has %d locks, IDs 0 to %d", id, m.Dir(), capacity, capacity-1)
		}
	}
	return capacity, nil
}
