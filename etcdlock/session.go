package etcdlock

import (
	"context"
	"fmt"
	"time"
)

// session returns the Manager's live session, granting a new lease if there
// is none or the last one was lost. The grant is bounded by the timeout and
// by ctx.
func (m *Manager) session(ctx context.Context) (*session, error) {
	m.sessMu.Lock()
	defer m.sessMu.Unlock()
	if m.closed.Load() {
		return nil, m.errClosed()
	}
	if m.sess != nil && m.sess.alive() {
		return m.sess, nil
	}
	gctx, cancel := context.WithTimeout(ctx, m.opts.timeout)
	defer cancel()
	ttl := int64(m.opts.ttl / time.Second)
	sent := time.Now()
	g, err := m.cli.Grant(gctx, ttl)
	if err != nil {
		return nil, m.etcdErr("grant lease", m.k.p, err)
	}
	// The session's context is the Manager's, not ctx: it lives on after
	// the call that made it, until Close or the lease is lost.
	s, err := newSession(m.ctx, m.cli, g, sent, m.opts.timeout)
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), m.opts.timeout)
		m.cli.Revoke(rctx, g.ID)
		cancel()
		return nil, m.etcdErr("keep lease alive", m.k.p, err)
	}
	if !s.alive() {
		// The grant was answered more than a TTL after it was sent (a
		// client reconnecting, a TTL below the request timeout): the
		// lease may have expired already, so no key may be bound to
		// it (review 16). Another grant would most likely lapse too.
		// alive has ended s, stopped its keepalives and begun the
		// lease's revoke (lapse).
		return nil, m.etcdErr("grant lease", m.k.p, fmt.Errorf("%w: the grant was answered %v after it was sent, past the TTL of %v", errSessionLost, time.Since(sent).Round(time.Millisecond), m.opts.ttl))
	}
	m.sess = s
	return m.sess, nil
}

// abandon drops s as the Manager's session, if it is, and revokes its
// lease in the background. withdraw calls it when it cannot delete the key
// of a failed attempt to lock, and acquire when a waiter's session ended:
// without keepalives the lease, and so the key, expires within the TTL
// even if the revoke does not reach etcd either. (Unlock retries its
// delete instead; see release.)
func (m *Manager) abandon(s *session) {
	m.sessMu.Lock()
	if m.sess == s {
		m.sess = nil
	}
	m.sessMu.Unlock()
	go s.close(m.opts.ttl)
}
