package etcdlock

import (
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/lock"
)

// errID refuses id, which is not below the capacity New read, for a
// change (AllocateAndRetrieve). The space
// may have been made again since with a larger one, where id is valid: a
// refusal from the stale capacity would then be lock.ErrInvalidID where
// every other answer of the Manager is lock.ErrCorrupt (review 15). So the
// refusal reads the meta key first, and says lock.ErrCorrupt if the space
// is not the one New opened. The read is on this path only; if it fails,
// the refusal stands, as the capacity of the space New opened.
func (m *Manager) errID(op string, id uint32) error {
	ctx, cancel := m.reqCtx()
	defer cancel()
	if resp, err := m.cli.Get(ctx, m.k.meta(), clientv3.WithKeysOnly()); err == nil {
		if err := m.checkSpace(op, resp.Kvs); err != nil {
			return err
		}
	}
	return m.errIDNoRead(id)
}

// errIDNoRead refuses id from the capacity New read, without a request:
// Retrieve's refusal, which must not wait for etcd (review 16: behind an
// unreachable etcd, it waited the whole request timeout).
func (m *Manager) errIDNoRead(id uint32) error {
	return fmt.Errorf("lock %d in %s: capacity is %d: %w", id, m.k.p, m.capacity, lock.ErrInvalidID)
}
