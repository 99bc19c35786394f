package etcdlock

import "time"

// Defaults of the options.
const (
	// DefaultTTL is the session lease TTL unless WithTTL says otherwise.
	// A dead holder's locks are free at most this long after it dies.
	DefaultTTL = 10 * time.Second

	// DefaultTimeout bounds each etcd request of the Manager unless
	// WithTimeout says otherwise.
	DefaultTimeout = 5 * time.Second
)

// An Option configures New.
type Option func(*options)

type options struct {
	ttl     time.Duration // session lease TTL, whole seconds
	timeout time.Duration // each request that must not wait forever
}

func defaultOptions() options {
	return options{ttl: DefaultTTL, timeout: DefaultTimeout}
}

// WithTTL sets the TTL of the session lease that every lock held through
// the Manager is bound to. The default is DefaultTTL, 10 seconds. A holder
// that dies, or that cannot reach etcd, loses its locks at most d after its
// last successful keepalive (or the lease's grant, before the first), and
// a live holder's Lost closes then, by its own clock: the Manager ends the
// session on a timer of its own at that deadline. A shorter TTL frees
// locks sooner but makes a holder on a slow or distant link more likely to
// lose its lease while alive. etcd counts TTLs in whole seconds, so d is
// rounded up to a whole second of at least 1; the server may raise it to
// its own minimum (one and a half election timeouts), and the deadline
// counts the TTL that the server answered.
func WithTTL(d time.Duration) Option {
	return func(o *options) {
		secs := (d + time.Second - 1) / time.Second
		o.ttl = max(1, secs) * time.Second
	}
}

// WithTimeout bounds every etcd request that the Manager makes outside a
// wait for a lock: New, allocation, Free, the queries, TryLock and Unlock.
// An unreachable cluster then gives an error (context.DeadlineExceeded)
// within about d, never a hang. The default is DefaultTimeout, 5 seconds.
// Lock waits as long as it takes, and LockContext as long as its context.
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}
