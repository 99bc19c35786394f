package etcdlock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/lock"
)

// TestAllocationModel runs random allocations and frees against a set of
// allocated IDs: every result agrees with the set, and after every step the
// free ranges in etcd are exactly the maximal runs of free IDs, in order,
// so that allocation stays two round trips.
func TestAllocationModel(t *testing.T) {
	const n = 24
	m := newManager(t, n)
	cli := newClient(t)
	rng := rand.New(rand.NewPCG(1, 2))
	alloc := make(map[uint32]bool)
	lowest := func() (uint32, bool) {
		for id := range uint32(n) {
			if !alloc[id] {
				return id, true
			}
		}
		return 0, false
	}
	for step := range 400 {
		id := uint32(rng.IntN(n))
		switch op := rng.IntN(10); {
		case op < 4:
			l, err := m.AllocateLock()
			want, ok := lowest()
			switch {
			case !ok && !errors.Is(err, lock.ErrNoFreeLocks):
				t.Fatalf("step %d: AllocateLock when full: %v", step, err)
			case ok && (err != nil || l.ID() != want):
				t.Fatalf("step %d: AllocateLock = %v, %v; want %d", step, l, err, want)
			}
			alloc[want] = ok || alloc[want]
		case op < 6:
			_, err := m.AllocateAndRetrieveLock(id)
			if alloc[id] != errors.Is(err, lock.ErrAllocated) || (!alloc[id] && err != nil) {
				t.Fatalf("step %d: AllocateAndRetrieveLock(%d) with allocated=%v: %v", step, id, alloc[id], err)
			}
			alloc[id] = true
		case op < 9:
			l, _ := m.RetrieveLock(id)
			err := l.Free()
			if alloc[id] == errors.Is(err, lock.ErrNotAllocated) || (alloc[id] && err != nil) {
				t.Fatalf("step %d: Free(%d) with allocated=%v: %v", step, id, alloc[id], err)
			}
			delete(alloc, id)
		default:
			if rng.IntN(4) == 0 {
				if err := m.FreeAllLocks(); err != nil {
					t.Fatal(err)
				}
				clear(alloc)
			}
		}
		checkRanges(t, cli, m.Prefix(), n, alloc, step)
	}
}

// checkRanges reads the free ranges under prefix and compares them with the
// maximal runs of IDs not in alloc.
func checkRanges(t *testing.T, cli *clientv3.Client, prefix string, n uint32, alloc map[uint32]bool, step int) {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix+"free/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range resp.Kvs {
		end, _ := strconv.Atoi(strings.TrimPrefix(string(kv.Key), prefix+"free/"))
		got = append(got, fmt.Sprintf("[%s,%d)", kv.Value, end))
	}
	var want []string
	for id := uint32(0); id < n; {
		if alloc[id] {
			id++
			continue
		}
		start := id
		for id < n && !alloc[id] {
			id++
		}
		want = append(want, fmt.Sprintf("[%d,%d)", start, id))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("step %d: free ranges %v, want %v", step, got, want)
	}
}
