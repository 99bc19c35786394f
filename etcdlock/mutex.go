package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The etcd side of a lock is the algorithm of etcd's concurrency.Mutex, with
// the revisions kept: a would-be holder puts a key named by its lease under
// the lock's directory, and holds the lock once every key created before
// its own is gone. The holder's key's create revision is the fencing token:
// keys are served in create-revision order, and revisions only grow, so
// each acquisition of an ID gets a larger token than the one before.

// lagWatch makes waiters watch from revision 1, as a watch served by a
// member that lags far behind would: the tests use it to check that events
// older than a waiter's read are skipped.
var lagWatch atomic.Bool

// errSessionLost says that the session's lease ended while acquiring: the
// holder key went with it, and the attempt starts again on a new session.
var errSessionLost = errors.New("session lease lost")

// holderValue names this process in its holder keys, for humans.
var holderValue = func() string {
	host, _ := os.Hostname()
	return host + " " + strconv.Itoa(os.Getpid())
}()

// acquire takes lock id in etcd. With wait false it gives up at once if
// another holder has the lock, and returns a nil hold. st.sem must be held.
func (m *Manager) acquire(ctx context.Context, id uint32, wait bool) (*hold, error) {
	for {
		s, err := m.session(ctx)
		if err != nil {
			return nil, err
		}
		h, err := m.acquireIn(ctx, s, id, wait)
		// A lease that ended before the client noticed is refused as
		// "lease not found" (review 10c: TryLock panicked on it): the
		// session is lost too.
		if errors.Is(err, errSessionLost) || errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// Revoke the lease, in case only the client gave up on
			// it: its keys would otherwise wait out the TTL.
			m.abandon(s)
			continue
		}
		return h, err
	}
}

// acquireIn takes lock id with a holder key bound to s.
func (m *Manager) acquireIn(ctx context.Context, s *session, id uint32, wait bool) (*hold, error) {
	key := m.k.holder(id, s.lease())
	dir := m.k.lock(id)
	// This attempt's void key, which withdrawUnknown makes if it gives up
	// on the put: the put is applied only while it is absent.
	void := m.k.void(s.lease(), m.attempts.Add(1))
	rctx, cancel := context.WithTimeout(ctx, m.opts.timeout)
	// One round trip: make the key unless a retry already made it, and
	// read the oldest key, the holder's. The put is also conditional on
	// the lock space being the one New opened (space.go), and the else
	// branch reads the meta key to tell which compare failed: a lock in
	// a deleted space would exclude nobody who opens the space again.
	getOwner := clientv3.OpGet(dir, clientv3.WithFirstCreate()...)
	resp, err := m.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0), clientv3.Compare(clientv3.CreateRevision(void), "=", 0), m.sameSpace()).
		Then(clientv3.OpPut(key, holderValue, clientv3.WithLease(clientv3.LeaseID(s.lease()))), getOwner).
		Else(clientv3.OpGet(key), getOwner, m.getMeta()).
		Commit()
	cancel()
	if err != nil {
		// Unless etcd refused it, the put may have been applied, or may
		// be later: a request whose client gave up is not withdrawn
		// from etcd. A refusal is final, and withdrawUnknown's own put
		// would be refused too: under the NOSPACE alarm, which refuses
		// puts but not deletes or keepalives, that would abandon the
		// session and lose the Manager's other locks (review 13).
		if !putRefused(err) {
			m.withdrawUnknown(s, key, void)
		}
		return nil, m.etcdErr("lock", key, err)
	}
	rev := resp.Header.Revision
	if !resp.Succeeded {
		// Nothing was put: the error is final, as lock sees it.
		if err := m.checkSpace("lock", resp.Responses[2].GetResponseRange().Kvs); err != nil {
			return nil, err
		}
		rev = resp.Responses[0].GetResponseRange().Kvs[0].CreateRevision
	}
	h := &hold{key: key, rev: rev, sess: s}
	if owner := resp.Responses[1].GetResponseRange().Kvs; len(owner) > 0 && owner[0].CreateRevision == rev {
		return h, heldAlive(s)
	}
	if !wait {
		if err := m.withdraw(s, key, rev); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if err := m.waitPredecessors(ctx, s, dir, key, rev); err != nil {
		if !errors.Is(err, errSessionLost) {
			m.withdraw(s, key, rev)
		}
		return nil, err
	}
	return h, heldAlive(s)
}

// heldAlive is nil if s is still alive once its key holds the lock, and
// errSessionLost if its deadline passed meanwhile (during the put, or
// the wait): then the key may have gone with the lease, and another
// process may hold the lock, so the hold is never returned (review 16).
// acquire then abandons s, which revokes the lease and its key, and
// tries again on a new one.
func heldAlive(s *session) error {
	if s.alive() {
		return nil
	}
	return fmt.Errorf("%w: its deadline passed while the lock was being taken", errSessionLost)
}

// waitPredecessors waits until no key under dir is older than rev, while
// key, the caller's, still exists.
//
// It watches the whole directory from the current revision, then reads the
// keys older than its own once the watch is in place, and counts them off
// as the watch reports their deletion: the handoff costs no read after the
// holder's delete. A watch that starts at an older revision, as
// concurrency.Mutex's does, is caught up by etcd's background loop, which
// runs every 100 ms, and so would add up to 100 ms to a handoff; a watch
// from the current revision gets every event as it is committed, in order.
func (m *Manager) waitPredecessors(ctx context.Context, s *session, dir, key string, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wopts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithCreatedNotify()}
	if lagWatch.Load() {
		wopts = append(wopts, clientv3.WithRev(1))
	}
	wch := m.cli.Watch(wctx, dir, wopts...)
	older := make(map[string]bool)
	created := false
	for !created {
		wr, err := m.nextWatch(ctx, s, wch, key)
		if err != nil {
			return err
		}
		created = wr.Created
	}
	rctx, rcancel := context.WithTimeout(ctx, m.opts.timeout)
	resp, err := m.readTxn(rctx,
		clientv3.OpGet(key, clientv3.WithKeysOnly()),
		clientv3.OpGet(dir, clientv3.WithPrefix(), clientv3.WithMaxCreateRev(rev-1), clientv3.WithKeysOnly()),
	)
	rcancel()
	if err != nil {
		return m.etcdErr("lock", key, err)
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return errSessionLost
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		older[string(kv.Key)] = true
	}
	// The watch began before the read, so it reports every deletion after
	// the read, in revision order. It may report earlier ones too, which
	// the read already reflects, and which must be skipped: the member
	// serving the watch may lag behind the one that answered the read, and
	// a holder that unlocks and locks again reuses its key's name, so an
	// old deletion can name a key that the read found alive.
	readRev := resp.Header.Revision
	for len(older) > 0 {
		wr, err := m.nextWatch(ctx, s, wch, key)
		if err != nil {
			return err
		}
		for _, ev := range wr.Events {
			if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision <= readRev {
				continue
			}
			k := string(ev.Kv.Key)
			if k == key {
				return errSessionLost
			}
			delete(older, k)
		}
	}
	return m.stillQueued(ctx, s, key, rev)
}

// stillQueued checks, once every key ahead of key is gone, that key itself
// is still there: that the lock is this waiter's. A waiter paused past its
// TTL (SIGSTOP, a long pause, a partition) has lost its key with its
// lease, and another process may have taken the lock since; the watch can
// report the deletion of the key ahead before that of key, and its
// session's end may not have reached this process yet. (Found by review:
// a waiter stopped past its TTL ran its command while another process
// held the lock.) It costs one round trip, on the waiting path only.
func (m *Manager) stillQueued(ctx context.Context, s *session, key string, rev int64) error {
	select {
	case <-s.done():
		return errSessionLost
	default:
	}
	rctx, cancel := context.WithTimeout(ctx, m.opts.timeout)
	resp, err := m.cli.Get(rctx, key, clientv3.WithKeysOnly())
	cancel()
	if err != nil {
		return m.etcdErr("lock", key, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != rev {
		return errSessionLost
	}
	return nil
}

// nextWatch returns the next response on wch. It fails if the watch ends,
// s ends or ctx is done.
func (m *Manager) nextWatch(ctx context.Context, s *session, wch clientv3.WatchChan, key string) (clientv3.WatchResponse, error) {
	select {
	case wr, ok := <-wch:
		if err := ctx.Err(); err != nil {
			return wr, err
		}
		if !ok {
			return wr, m.etcdErr("watch", key, errors.New("watch closed"))
		}
		if err := wr.Err(); err != nil {
			return wr, m.etcdErr("watch", key, err)
		}
		return wr, nil
	case <-s.done():
		return clientv3.WatchResponse{}, errSessionLost
	case <-ctx.Done():
		return clientv3.WatchResponse{}, ctx.Err()
	}
}

// putRefused reports whether err is etcd's final refusal of a
// transaction with a put, which it did not and will not apply: no space
// (the NOSPACE alarm), no such lease, or what refused names.
func putRefused(err error) bool {
	return errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrLeaseNotFound) || refused(err)
}

// withdrawUnknown withdraws key, a holder key of s whose put's fate is
// unknown: it deletes the key, if the put was applied, and makes void, so
// that a put still on its way fails its compare instead of making the key
// again (review 10c, 11b: a put applied after the delete left a holder
// key that nobody in the process knew of, bound to a live lease, which
// held the lock for the Manager's life). void goes with the lease. If
// etcd cannot be reached, it abandons s, as withdraw does: a late put on a
// revoked lease fails.
//
// void is made only in the lock space New opened. Once that is gone, the
// put compares a meta key revision that can never come back, so it needs
// no void key, and one would be a key in the deleted space that lives as
// long as the session, making New refuse the prefix until then.
func (m *Manager) withdrawUnknown(s *session, key, void string) {
	ctx, cancel := m.reqCtx()
	defer cancel()
	_, err := m.cli.Txn(ctx).If(m.sameSpace()).Then(
		clientv3.OpDelete(key),
		clientv3.OpPut(void, "", clientv3.WithLease(clientv3.LeaseID(s.lease()))),
	).Else(clientv3.OpDelete(key)).Commit()
	if err != nil {
		m.abandon(s)
	}
}

// withdraw deletes key, a holder key of s created at revision rev that
// must not hold the lock. If etcd cannot be reached, it
// abandons s so that the key expires with the lease within the TTL, and
// returns the error.
func (m *Manager) withdraw(s *session, key string, rev int64) error {
	if err := m.deleteKey(key, rev); err != nil {
		m.abandon(s)
		return m.etcdErr("unlock", key, err)
	}
	return nil
}

// release deletes the holder key of h, then calls done, which gives up
// the in-process turn at the lock. If the session is already lost, the key
// is gone or goes with the lease, and release does not wait for etcd.
//
// If the delete fails on a live session, release retries it in the
// background, with a backoff up to a second, until it succeeds or the
// session ends (the key then goes with the lease), and calls done only
// then. It does not abandon the session, as withdraw does: the session's
// other locks stay held, and this one is free as soon as etcd answers.
// The key's fate is unknown meanwhile, and only this process may touch it:
// a Lock of the same ID here would find the key under the same name and
// adopt it, with the old hold's token. Holding the turn until the delete
// is done makes that Lock wait instead.
func (m *Manager) release(h *hold, done func()) {
	if !h.sess.alive() {
		go m.withdraw(h.sess, h.key, h.rev)
		done()
		return
	}
	if m.deleteKey(h.key, h.rev) == nil {
		done()
		return
	}
	go func() {
		defer done()
		for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-h.sess.done():
				t.Stop()
				return
			case <-m.ctx.Done():
				t.Stop()
				return
			}
			if m.deleteKey(h.key, h.rev) == nil {
				return
			}
		}
	}()
}

// deleteKey deletes key, bounded by the timeout, if it is still the key
// created at revision rev. A holder key is named after its session's
// lease, so the next hold of the same ID through the same session has the
// same name: a delete that etcd applies late, after the client gave up on
// it and a retry succeeded, must not delete that hold's key (review 10c:
// two holders, and Lost stayed open).
func (m *Manager) deleteKey(key string, rev int64) error {
	ctx, cancel := m.reqCtx()
	defer cancel()
	_, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
		Then(clientv3.OpDelete(key)).
		Commit()
	return err
}
