package etcdlock

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// session is a lease kept alive for the locks held through a Manager. Every
// holder key is bound to it, so that the keys of a process that dies, or
// that loses etcd for longer than the TTL, are deleted by etcd itself.
//
// The session keeps the lease's deadline itself, on this process's
// monotonic clock: the grant's TTL from when its request was sent, then
// each keepalive answer's TTL from when it was read. Past it, the server
// may have expired the lease and another process taken the locks, so the
// session ends there, whether or not the client has noticed. etcd's
// client closes a keepalive channel on its own deadline only, which it
// checks once a second and which, before the first answer, is
// DialTimeout + 1 s rather than the TTL (review 10c: Lost closed 6.8 s
// after the grant of a holder cut off at once, with a TTL of 2 s, while
// another process had the lock from 2.1 s). One timer per session does
// it, not one per lock.
type session struct {
	cli     *clientv3.Client
	id      clientv3.LeaseID
	timeout time.Duration // bounds the revoke of a lapsed lease

	origin   time.Time    // the origin of deadline, with its monotonic reading
	deadline atomic.Int64 // nanoseconds after origin when the lease may have expired

	stop   context.CancelFunc // stops the keepalives
	ended  sync.Once
	donec  chan struct{} // closed when the session ends
	exited chan struct{} // closed when keep returns
}

// newSession keeps the lease g alive under ctx, its deadline g.TTL after
// sent, the time its grant request was sent: the server started the TTL
// when it granted the lease, later than that.
func newSession(ctx context.Context, cli *clientv3.Client, g *clientv3.LeaseGrantResponse, sent time.Time, timeout time.Duration) (*session, error) {
	kctx, stop := context.WithCancel(ctx)
	ka, err := cli.KeepAlive(kctx, g.ID)
	if err != nil {
		stop()
		return nil, err
	}
	s := &session{cli: cli, id: g.ID, timeout: timeout, origin: sent, stop: stop,
		donec: make(chan struct{}), exited: make(chan struct{})}
	s.extend(sent, g.TTL)
	go s.keep(ka)
	return s, nil
}

func (s *session) lease() int64          { return int64(s.id) }
func (s *session) done() <-chan struct{} { return s.donec }

// extend moves the deadline to ttl seconds after at.
func (s *session) extend(at time.Time, ttl int64) {
	s.deadline.Store(int64(at.Sub(s.origin) + time.Duration(ttl)*time.Second))
}

// left is how long until the deadline, negative once it has passed.
func (s *session) left() time.Duration {
	return time.Duration(s.deadline.Load()) - time.Since(s.origin)
}

// alive reports whether the session has not ended. It reads the clock
// besides the channel, so that a caller never acts on a lease whose
// deadline has passed while the timer that ends the session is still to
// run (a process that was stopped, or starved of CPU); it then ends the
// session itself. This costs no request.
func (s *session) alive() bool {
	select {
	case <-s.donec:
		return false
	default:
	}
	if s.left() > 0 {
		return true
	}
	s.lapse()
	return false
}

// keep reads the keepalive answers and moves the deadline with each, and
// ends the session when the deadline passes without one, or when the
// client closes the channel: the server said the lease is gone (revoked,
// expired), the client gave up on it, or ctx ended (close, Close).
func (s *session) keep(ka <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(s.exited)
	t := time.NewTimer(s.left())
	defer t.Stop()
	for {
		select {
		case r, ok := <-ka:
			if !ok {
				s.end()
				return
			}
			if s.left() <= 0 {
				// Read past the deadline (this process was
				// stopped, or starved): the answer may have
				// come long before, and the lease expired
				// since; and alive may already have told a
				// caller that the session ended.
				s.lapse()
				return
			}
			s.extend(time.Now(), r.TTL)
			t.Reset(s.left())
		case <-t.C:
			// Only this goroutine moves the deadline, so it has
			// passed; left is checked all the same, in case a
			// timer ever fires early.
			if d := s.left(); d > 0 {
				t.Reset(d)
				continue
			}
			s.lapse()
			return
		}
	}
}

// end ends the session: it closes done and stops the keepalives.
func (s *session) end() {
	s.ended.Do(func() {
		close(s.donec)
		s.stop()
	})
}

// lapse ends the session at its deadline, and revokes the lease in the
// background: the server may still hold it, if only its answers were
// late, and the keys of holds that this process now reports lost would
// otherwise exclude others until it expires.
func (s *session) lapse() {
	s.ended.Do(func() {
		close(s.donec)
		s.stop()
		go s.revoke(s.timeout)
	})
}

// close stops the keepalives and revokes the lease, deleting its keys.
func (s *session) close(timeout time.Duration) error {
	s.end()
	<-s.exited
	return s.revoke(timeout)
}

// revoke revokes the lease, bounded by timeout.
func (s *session) revoke(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := s.cli.Revoke(ctx, s.id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// Expired or revoked already, its keys with it (review 10c:
		// Close failed after a lost lease).
		return nil
	}
	return err
}
