package etcdlock_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/lock"
)

// TestLockSpaceGone (review 10c): the lock space is deleted (etcdctl del
// --prefix) under a live Manager. docs/etcd.md says "A space deleted or
// recreated under a live Manager: its next change fails with
// lock.ErrCorrupt", and Locker.Lock's doc that it panics if "the lock
// space is gone" (LockContext returns the error instead). Before the fix
// (space.go):
//
//   - Allocate failed with lock.ErrNoFreeLocks, AllocateAndRetrieve with
//     lock.ErrAllocated and Free with lock.ErrNotAllocated: each found no
//     free range (or no alloc key) and answered before its transaction,
//     the only place that compared the meta key (lockdir alloc then
//     exited 4, "no free locks", not 3);
//   - LockContext of a free ID took the lock, and TryLock too: acquire
//     never compared the meta key, so lock() never saw lock.ErrCorrupt,
//     and Lock did not panic.
func TestLockSpaceGone(t *testing.T) {
	cli := newClient(t)
	m := newManager(t, 4)
	deleteSpace(t, cli, m.Prefix())
	checkGone(t, m, "a deleted lock space")
	if err := m.FreeAllLocks(); !errors.Is(err, lock.ErrCorrupt) {
		t.Errorf("FreeAllLocks in a deleted lock space: %v, want lock.ErrCorrupt", err)
	}
	if n := keyCount(t, cli, m.Prefix()); n != 0 {
		t.Errorf("%d keys under the deleted lock space's prefix, want 0", n)
	}
}

// TestLockSpaceMadeAgain: the lock space is deleted and another Manager
// makes a new one at the same prefix. The old Manager's calls fail with
// lock.ErrCorrupt, as in a deleted space, and leave the new space alone:
// before the fix, its Free of an ID that the new space had not allocated
// said lock.ErrNotAllocated, and its LockContext took a lock in the new
// space.
func TestLockSpaceMadeAgain(t *testing.T) {
	cli := newClient(t)
	m := newManager(t, 4)
	deleteSpace(t, cli, m.Prefix())
	m2, err := etcdlock.New(cli, m.Prefix(), 4, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	l0, err := m2.Allocate()
	if err != nil || l0.ID() != 0 {
		t.Fatalf("Allocate in the new space: %v, %v; want lock 0", l0, err)
	}
	checkGone(t, m, "a lock space made again")
	if err := locker(t, m, 0).Free(); !errors.Is(err, lock.ErrCorrupt) {
		t.Errorf("Free of an ID the new space allocated: %v, want lock.ErrCorrupt", err)
	}
	if ids, err := m2.Allocated(); err != nil || !slices.Equal(ids, []uint32{0}) {
		t.Errorf("new space's allocated IDs after the old Manager's calls: %v, %v; want [0]", ids, err)
	}
	if hs, err := m2.Holders(); err != nil || len(hs) != 0 {
		t.Errorf("new space's holders after the old Manager's calls: %v, %v; want none", hs, err)
	}
}

// TestLockSpaceGoneUnderLocks deletes the lock space while a lock is held
// and another waits, both through the same Manager (docs/etcd.md says
// what happens). The waiter's key goes with the space, which looks to it
// like a lost session; its next attempt, on a new session, must fail with
// lock.ErrCorrupt rather than take the lock (before the fix, it did). The
// hold's key goes too: Check reports ErrLost, Unlock returns as usual, and
// the hold's token is below any of a space made again at the prefix, so
// fencing refuses its writes.
func TestLockSpaceGoneUnderLocks(t *testing.T) {
	cli := newClient(t)
	m := newManager(t, 4)
	other, err := etcdlock.New(newClient(t), m.Prefix(), 0, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	held := locker(t, m, 0)
	held.Lock()
	tok := held.Token()
	busy := locker(t, other, 1)
	busy.Lock()
	waitErr := make(chan error, 1)
	waiter := locker(t, m, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := waiter.LockContext(ctx)
		if err == nil {
			waiter.Unlock()
		}
		waitErr <- err
	}()
	waitQueued(t, m, 1)
	deleteSpace(t, cli, m.Prefix())
	if err := <-waitErr; !errors.Is(err, lock.ErrCorrupt) {
		t.Errorf("LockContext waiting when the lock space was deleted: %v, want lock.ErrCorrupt", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := held.Check(ctx); !errors.Is(err, etcdlock.ErrLost) {
		t.Errorf("Check of a hold whose lock space was deleted: %v, want etcdlock.ErrLost", err)
	}
	m2, err := etcdlock.New(cli, m.Prefix(), 4, etcdlock.WithTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	l := locker(t, m2, 0)
	if !l.TryLock() {
		t.Fatal("lock 0 of the new space is held")
	}
	if l.Token() <= tok {
		t.Errorf("token %d in the new space, not above the old hold's %d", l.Token(), tok)
	}
	held.Unlock()
	busy.Unlock()
	if err := l.Check(ctx); err != nil {
		t.Errorf("new space's hold after the old holders' Unlock: %v", err)
	}
	l.Unlock()
	if err := held.LockContext(ctx); !errors.Is(err, lock.ErrCorrupt) {
		held.Unlock()
		t.Errorf("LockContext after the old hold's Unlock: %v, want lock.ErrCorrupt", err)
	}
}

// checkGone checks that every change of m, and a lock, fails with
// lock.ErrCorrupt and names the prefix, in what says where the space is.
func checkGone(t *testing.T, m *etcdlock.Manager, where string) {
	t.Helper()
	check := func(call string, err error) {
		t.Helper()
		if !errors.Is(err, lock.ErrCorrupt) {
			t.Errorf("%s in %s: %v, want lock.ErrCorrupt", call, where, err)
		} else if !strings.Contains(err.Error(), m.Prefix()) {
			t.Errorf("%s in %s: %q does not name the prefix %s", call, where, err, m.Prefix())
		}
	}
	_, err := m.Allocate()
	check("Allocate", err)
	_, err = m.AllocateAndRetrieve(2)
	check("AllocateAndRetrieve", err)
	check("Free", locker(t, m, 3).Free())
	l := locker(t, m, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.LockContext(ctx); err == nil {
		defer l.Unlock()
		t.Errorf("LockContext in %s took the lock (token %d); Lock's doc says it fails (panics) when the lock space is gone", where, l.Token())
	} else {
		check("LockContext", err)
	}
	func() {
		defer func() {
			err, _ := recover().(error)
			check("TryLock's panic", err)
		}()
		if l.TryLock() {
			defer l.Unlock()
			t.Errorf("TryLock in %s took the lock", where)
		}
	}()
}

// deleteSpace deletes every key under prefix, as etcdctl del --prefix.
func deleteSpace(t *testing.T, cli *clientv3.Client, prefix string) {
	t.Helper()
	if _, err := cli.Delete(context.Background(), prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
}

// keyCount returns the number of keys under prefix.
func keyCount(t *testing.T, cli *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// waitQueued waits until lock id of m's space has a waiter.
func waitQueued(t *testing.T, m *etcdlock.Manager, id uint32) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		hs, err := m.Holders()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.ID == id && h.Waiting {
				return
			}
		}
	}
	t.Fatalf("lock %d has no waiter after 5s", id)
}

// spaceDeleter is a gRPC interceptor that, at the first holder put,
// deletes the lock space at prefix and fails the put unsent, as a timeout
// would: the caller cannot tell that it was not applied.
type spaceDeleter struct {
	once   sync.Once
	cli    *clientv3.Client
	prefix string
}

func (d *spaceDeleter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	fail := false
	if isHolderPut(req) {
		d.once.Do(func() { fail = true })
	}
	if !fail {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	if _, err := d.cli.Delete(ctx, d.prefix, clientv3.WithPrefix()); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// TestLockSpaceGoneUnderLostPut: the lock space is deleted while a holder
// put's answer is lost. The attempt withdraws the put, which makes a void
// key so that a late put fails; it must not make it in the deleted space,
// where the put can no longer apply anyway: bound to the session, the key
// would outlive the space, and New would refuse the prefix ("holds keys
// but no meta key") for as long as the old Manager lives.
func TestLockSpaceGoneUnderLostPut(t *testing.T) {
	cli := newClient(t)
	d := &spaceDeleter{cli: cli}
	m := interceptedManager(t, d.intercept)
	d.prefix = m.Prefix()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l := locker(t, m, 1)
	if err := l.LockContext(ctx); !errors.Is(err, lock.ErrCorrupt) {
		if err == nil {
			l.Unlock()
		}
		t.Errorf("LockContext whose put's answer was lost as the lock space was deleted: %v, want lock.ErrCorrupt", err)
	}
	if n := keyCount(t, cli, m.Prefix()); n != 0 {
		t.Errorf("%d keys under the deleted lock space's prefix, want 0", n)
	}
	m2, err := etcdlock.New(cli, m.Prefix(), 4)
	if err != nil {
		t.Fatalf("New at the deleted lock space's prefix: %v", err)
	}
	m2.Close()
}
