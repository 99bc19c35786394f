package etcdlock_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

// Roles of this package's child processes, chosen by $ETCDLOCK_CHILD.
const (
	envChild = "ETCDLOCK_CHILD"
	envAddr  = "ETCDLOCK_ADDR"
	envID    = "ETCDLOCK_ID"
)

// children maps each role to the function that plays it.
var children = map[string]func() error{
	"hold":          childHold,
	"contend":       childContend,
	"cluster-count": childClusterCount,
}

// runChild plays the role in $ETCDLOCK_CHILD, if any, and reports whether
// it did; it exits the process when done.
func runChild() bool {
	role := os.Getenv(envChild)
	if role == "" {
		return false
	}
	f := children[role]
	if f == nil {
		fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
		os.Exit(2)
	}
	if err := f(); err != nil {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

// childHold locks $ETCDLOCK_ID, prints its token, and holds it until its
// standard input ends.
func childHold() error {
	m, err := openOwned(os.Getenv(envAddr))
	if err != nil {
		return err
	}
	defer m.Close()
	id, _ := strconv.ParseUint(os.Getenv(envID), 10, 32)
	l, err := m.RetrieveLock(uint32(id))
	if err != nil {
		return err
	}
	l.Lock()
	fmt.Println("locked", l.(interface{ Token() int64 }).Token())
	bufio.NewReader(os.Stdin).ReadString('\n')
	l.Unlock()
	return nil
}
