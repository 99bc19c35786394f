package etcdlock

import (
	"fmt"
	"io/fs"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/lock"
)

// A lock space is identified by its meta key's create revision, which New
// records: etcdctl del --prefix deletes the key, and a New after that makes
// it again at a later revision. Every change, and every holder key's put,
// either compares that revision in its transaction or reads the meta key
// beside what it reads, so that a space deleted or made again under a live
// Manager gives lock.ErrCorrupt instead of an answer about keys that are no
// longer this Manager's (review: Allocate said "no free locks", Free "not
// allocated", and LockContext took a lock in a deleted space).

// sameSpace is the compare that every change makes: the lock space is the
// one New opened, not one deleted and made again since.
func (m *Manager) sameSpace() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(m.k.meta()), "=", m.metaRev)
}

// getMeta reads the meta key's revisions, for checkSpace, in a read or a
// transaction's else branch that is made anyway: it costs no round trip.
func (m *Manager) getMeta() clientv3.Op {
	return clientv3.OpGet(m.k.meta(), clientv3.WithKeysOnly())
}

// checkSpace returns an error matching lock.ErrCorrupt unless kvs, the
// answer to getMeta, is the meta key of the space New opened.
func (m *Manager) checkSpace(op string, kvs []*mvccpb.KeyValue) error {
	switch {
	case len(kvs) == 0:
		return &fs.PathError{Op: op, Path: m.k.p, Err: &spaceChanged{fmt.Sprintf("lock space was deleted since it was opened (no %s key)", metaKey)}}
	case kvs[0].CreateRevision != m.metaRev:
		return &fs.PathError{Op: op, Path: m.k.p, Err: &spaceChanged{fmt.Sprintf("lock space was deleted and made again since it was opened (%s key made at revision %d, not %d)", metaKey, kvs[0].CreateRevision, m.metaRev)}}
	}
	return nil
}

// spaceChanged is checkSpace's error. It matches lock.ErrCorrupt, as the
// contract has it, but its text is etcd's account of what happened, without
// the sentinel's "lock registry is corrupt", which names a lock
// directory's file (review 15: lockdir printed it for a deleted space).
type spaceChanged struct{ why string }

func (e *spaceChanged) Error() string { return e.why }
func (e *spaceChanged) Unwrap() error { return lock.ErrCorrupt }

// readInSpace runs the reads ops after a read of the meta key, in one
// transaction (readTxn), and returns their answers once checkSpace has
// passed, with the revision they were read at: in a deleted space there
// is no free range or alloc key either, and "no free locks", "allocated"
// or "not allocated" would be the wrong answer. op and path name the read
// in its errors.
func (m *Manager) readInSpace(op, path string, ops ...clientv3.Op) (rev int64, rs []*etcdserverpb.ResponseOp, err error) {
	ctx, cancel := m.reqCtx()
	defer cancel()
	resp, err := m.readTxn(ctx, append([]clientv3.Op{m.getMeta()}, ops...)...)
	if err != nil {
		return 0, nil, m.etcdErr(op, path, err)
	}
	if err := m.checkSpace(op, resp.Responses[0].GetResponseRange().Kvs); err != nil {
		return 0, nil, err
	}
	return resp.Header.Revision, resp.Responses[1:], nil
}
