package etcdlock

import (
	"fmt"
	"io/fs"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/lock"
)

// Allocation changes the free ranges (keys.go) in two round trips: one
// read at a single revision R, then one transaction that applies the change
// only if none of the keys it depends on changed after R, and only in the
// same lock space (the meta key's create revision). A transaction that
// fails its compares retries from the read. Each read and each transaction
// touches a bounded number of keys, whatever the number of IDs allocated.
// The read includes the meta key (readInSpace), so that a deleted space
// is not mistaken for a full one.

// freeRange is a free range read from etcd.
type freeRange struct {
	start, end uint64
	key        string
	modRev     int64
}

// parseRange parses a free range key and value.
func (m *Manager) parseRange(kv *mvccpb.KeyValue) (freeRange, error) {
	key := string(kv.Key)
	end, ok1 := parseNum(key[min(len(key), len(m.k.freeDir())):])
	start, err := strconv.ParseUint(string(kv.Value), 10, 64)
	if !ok1 || err != nil || start >= end || end > uint64(m.capacity) {
		return freeRange{}, &fs.PathError{Op: "read", Path: key, Err: fmt.Errorf("bad free range %q: %w", kv.Value, lock.ErrCorrupt)}
	}
	return freeRange{start: start, end: end, key: key, modRev: kv.ModRevision}, nil
}

// commit runs one change transaction. It returns false if the compares
// failed because of a concurrent change, and an error if the lock space is
// gone or the request failed.
func (m *Manager) commit(op, path string, cmps []clientv3.Cmp, ops []clientv3.Op) (bool, error) {
	ctx, cancel := m.reqCtx()
	defer cancel()
	cmps = append(cmps, m.sameSpace())
	resp, err := m.cli.Txn(ctx).If(cmps...).Then(ops...).Else(m.getMeta()).Commit()
	if err != nil {
		return false, m.etcdErr(op, path, err)
	}
	if resp.Succeeded {
		return true, nil
	}
	return false, m.checkSpace(op, resp.Responses[0].GetResponseRange().Kvs)
}

// AllocateLock is Allocate as lock.Manager has it.
func (m *Manager) AllocateLock() (lock.Locker, error) { return asLocker(m.Allocate()) }

// AllocateAndRetrieveLock is AllocateAndRetrieve as lock.Manager has it.
func (m *Manager) AllocateAndRetrieveLock(id uint32) (lock.Locker, error) {
	return asLocker(m.AllocateAndRetrieve(id))
}

// asLocker returns l as a lock.Locker, and a nil interface, not a nil
// *Locker, with an error.
func asLocker(l *Locker, err error) (lock.Locker, error) {
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Allocate allocates the lowest free ID and returns its lock. When every
// lock is allocated it fails with an error matching lock.ErrNoFreeLocks,
// and when the lock space was deleted or made again since New, with
// lock.ErrCorrupt (as every change does).
// It costs two round trips to etcd, plus two for each time a concurrent
// change makes it retry.
func (m *Manager) Allocate() (*Locker, error) {
	if m.closed.Load() {
		return nil, m.errClosed()
	}
	k := m.k
	for {
		rev, rs, err := m.readInSpace("allocate", k.p, clientv3.OpGet(k.freeDir(), clientv3.WithPrefix(), clientv3.WithLimit(1)))
		if err != nil {
			return nil, err
		}
		kvs := rs[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return nil, fmt.Errorf("allocate in %s: capacity is %d: %w", k.p, m.capacity, lock.ErrNoFreeLocks)
		}
		r, err := m.parseRange(kvs[0])
		if err != nil {
			return nil, err
		}
		id := uint32(r.start)
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(r.key), "=", r.modRev),
			// No lower range appeared since the read: the ID is still
			// the lowest free one when the transaction commits.
			clientv3.Compare(clientv3.ModRevision(k.freeDir()), "<", rev+1).WithRange(r.key + "\x00"),
			clientv3.Compare(clientv3.CreateRevision(k.alloc(id)), "=", 0),
		}
		ops := []clientv3.Op{clientv3.OpPut(k.alloc(id), "")}
		if r.start+1 < r.end {
			ops = append(ops, clientv3.OpPut(r.key, strconv.FormatUint(r.start+1, 10)))
		} else {
			ops = append(ops, clientv3.OpDelete(r.key))
		}
		ok, err := m.commit("allocate", k.alloc(id), cmps, ops)
		if err != nil {
			return nil, err
		}
		if ok {
			return m.locker(id), nil
		}
	}
}

// AllocateAndRetrieve allocates the lock with the given ID and returns it.
// It fails with an error matching lock.ErrAllocated if the ID is
// allocated, and lock.ErrInvalidID if it is not below the capacity (or
// lock.ErrCorrupt, if the space was deleted or made again: errID).
func (m *Manager) AllocateAndRetrieve(id uint32) (*Locker, error) {
	if m.closed.Load() {
		return nil, m.errClosed()
	}
	if id >= m.capacity {
		return nil, m.errID("allocate", id)
	}
	k := m.k
	for {
		// The range holding id, if any, is the first whose end is above
		// it.
		_, rs, err := m.readInSpace("allocate", k.alloc(id), clientv3.OpGet(k.free(uint64(id)+1), clientv3.WithRange(prefixEnd(k.freeDir())), clientv3.WithLimit(1)))
		if err != nil {
			return nil, err
		}
		kvs := rs[0].GetResponseRange().Kvs
		var r freeRange
		if len(kvs) > 0 {
			if r, err = m.parseRange(kvs[0]); err != nil {
				return nil, err
			}
		}
		if len(kvs) == 0 || r.start > uint64(id) {
			return nil, fmt.Errorf("lock %d in %s: %w", id, k.p, lock.ErrAllocated)
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(r.key), "=", r.modRev),
			clientv3.Compare(clientv3.CreateRevision(k.alloc(id)), "=", 0),
		}
		ops := []clientv3.Op{clientv3.OpPut(k.alloc(id), "")}
		if uint64(id)+1 < r.end {
			ops = append(ops, clientv3.OpPut(r.key, strconv.FormatUint(uint64(id)+1, 10)))
		} else {
			ops = append(ops, clientv3.OpDelete(r.key))
		}
		if r.start < uint64(id) {
			left := k.free(uint64(id))
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(left), "=", 0))
			ops = append(ops, clientv3.OpPut(left, strconv.FormatUint(r.start, 10)))
		}
		ok, err := m.commit("allocate", k.alloc(id), cmps, ops)
		if err != nil {
			return nil, err
		}
		if ok {
			return m.locker(id), nil
		}
	}
}

// free marks id unallocated, merging its range with the free neighbours.
func (m *Manager) free(id uint32) error {
	if m.closed.Load() {
		return m.errClosed()
	}
	k := m.k
	left := k.free(uint64(id)) // the range ending at id, if free
	for {
		rev, rs, err := m.readInSpace("free", k.alloc(id),
			clientv3.OpGet(k.alloc(id), clientv3.WithKeysOnly()),
			clientv3.OpGet(left),
			// The range starting at id+1, if free, is the first whose
			// end is above id+1.
			clientv3.OpGet(k.free(uint64(id)+2), clientv3.WithRange(prefixEnd(k.freeDir())), clientv3.WithLimit(1)),
		)
		if err != nil {
			return err
		}
		a := rs[0].GetResponseRange().Kvs
		if len(a) == 0 {
			return fmt.Errorf("free lock %d in %s: %w", id, k.p, lock.ErrNotAllocated)
		}
		start, end := uint64(id), uint64(id)+1
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(k.alloc(id)), "=", a[0].ModRevision),
		}
		ops := []clientv3.Op{clientv3.OpDelete(k.alloc(id))}
		// Nothing in [left, right] was made or changed since the read.
		rightEnd := prefixEnd(k.freeDir())
		if kvs := rs[1].GetResponseRange().Kvs; len(kvs) > 0 {
			l, err := m.parseRange(kvs[0])
			if err != nil {
				return err
			}
			start = l.start
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(l.key), "=", l.modRev))
			ops = append(ops, clientv3.OpDelete(l.key))
		}
		if kvs := rs[2].GetResponseRange().Kvs; len(kvs) > 0 {
			r, err := m.parseRange(kvs[0])
			if err != nil {
				return err
			}
			rightEnd = r.key + "\x00"
			if r.start == uint64(id)+1 {
				end = r.end
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.key), "=", r.modRev))
			}
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(left), "<", rev+1).WithRange(rightEnd))
		ops = append(ops, clientv3.OpPut(k.free(end), strconv.FormatUint(start, 10)))
		ok, err := m.commit("free", k.alloc(id), cmps, ops)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
}

// FreeAllLocks frees every lock in one transaction, leaving held locks
// held. See lock.Manager for why it is dangerous.
func (m *Manager) FreeAllLocks() error {
	if m.closed.Load() {
		return m.errClosed()
	}
	k := m.k
	whole := k.free(uint64(m.capacity))
	// etcd refuses a transaction that deletes a key it also puts, so the
	// deletion of the old ranges skips the key of the new one.
	ok, err := m.commit("free all", k.p, nil, []clientv3.Op{
		clientv3.OpDelete(k.allocDir(), clientv3.WithPrefix()),
		clientv3.OpDelete(k.freeDir(), clientv3.WithRange(whole)),
		clientv3.OpDelete(whole+"\x00", clientv3.WithRange(prefixEnd(k.freeDir()))),
		clientv3.OpPut(whole, "0"),
	})
	if err == nil && !ok {
		panic("etcdlock: FreeAllLocks failed a compare it does not make")
	}
	return err
}

// AvailableLocks returns how many locks can still be allocated: the
// capacity less the number of allocated IDs, counted by etcd in one
// request.
func (m *Manager) AvailableLocks() (*uint32, error) {
	if m.closed.Load() {
		return nil, m.errClosed()
	}
	ctx, cancel := m.reqCtx()
	defer cancel()
	resp, err := m.cli.Get(ctx, m.k.allocDir(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, m.etcdErr("count", m.k.allocDir(), err)
	}
	if resp.Count > int64(m.capacity) {
		return nil, &fs.PathError{Op: "count", Path: m.k.allocDir(), Err: fmt.Errorf("%d IDs allocated, capacity %d: %w", resp.Count, m.capacity, lock.ErrCorrupt)}
	}
	n := m.capacity - uint32(resp.Count)
	return &n, nil
}

// Allocated returns the allocated IDs in ascending order.
func (m *Manager) Allocated() ([]uint32, error) {
	if m.closed.Load() {
		return nil, m.errClosed()
	}
	ctx, cancel := m.reqCtx()
	defer cancel()
	resp, err := m.cli.Get(ctx, m.k.allocDir(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, m.etcdErr("list", m.k.allocDir(), err)
	}
	return m.ids(resp.Kvs, allocDir)
}

// LocksHeld returns the allocated IDs that some holder, in this process or
// another, holds right now, in ascending order. It reads the allocated IDs
// and the holder keys at one revision. A lock counts as held while any key
// is under its lock directory: the one with the lowest create revision is
// the holder's.
func (m *Manager) LocksHeld() ([]uint32, error) {
	if m.closed.Load() {
		return nil, m.errClosed()
	}
	ctx, cancel := m.reqCtx()
	defer cancel()
	resp, err := m.readTxn(ctx,
		clientv3.OpGet(m.k.allocDir(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(m.k.lockDir(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	)
	if err != nil {
		return nil, m.etcdErr("list", m.k.lockDir(), err)
	}
	alloc, err := m.ids(resp.Responses[0].GetResponseRange().Kvs, allocDir)
	if err != nil {
		return nil, err
	}
	held, err := m.ids(resp.Responses[1].GetResponseRange().Kvs, lockDir)
	if err != nil {
		return nil, err
	}
	var out []uint32
	for i, j := 0, 0; i < len(alloc) && j < len(held); {
		switch {
		case alloc[i] < held[j]:
			i++
		case alloc[i] > held[j]:
			j++
		default:
			out = append(out, alloc[i])
			i++
			j++
		}
	}
	return out, nil
}

// ids parses the IDs of keys of dir, which etcd returns in key order, and
// drops repeats.
func (m *Manager) ids(kvs []*mvccpb.KeyValue, dir string) ([]uint32, error) {
	out := make([]uint32, 0, len(kvs))
	for _, kv := range kvs {
		id, ok := m.k.parseID(string(kv.Key), dir)
		if !ok || id >= m.capacity {
			return nil, &fs.PathError{Op: "read", Path: string(kv.Key), Err: fmt.Errorf("not a lock key: %w", lock.ErrCorrupt)}
		}
		if n := len(out); n == 0 || out[n-1] != id {
			out = append(out, id)
		}
	}
	return out, nil
}
