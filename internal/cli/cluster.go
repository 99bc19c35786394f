package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

// A Cluster opens lock spaces kept outside the lock directory, on a cluster
// of machines (etcd). The plain lockdir has none, so that it links nothing
// of etcd; the etcd-enabled lockdir, in the etcdlock module, passes one to
// RunCluster.
type Cluster interface {
	// Open opens the lock space that c names, creating it with numLocks
	// locks if it does not exist; with numLocks 0 it only joins one, and
	// fails with an error matching fs.ErrNotExist if there is none.
	Open(c ClusterConfig, numLocks uint32) (Space, error)
}

// ClusterConfig is what the command line says about the cluster.
type ClusterConfig struct {
	Endpoints         []string      // host:port, from --etcd or $LOCKDIR_ETCD
	CACert, Cert, Key string        // TLS files, as etcdctl's --cacert, --cert and --key
	Prefix            string        // the lock space's key prefix, --prefix
	Timeout           time.Duration // --dial-timeout: bounds the dial and each request
	TTL               time.Duration // --ttl: the session lease's TTL, 0 for the backend's default
}

// Admin is what alloc, free and free-all use of a lock directory or a
// lock space: a *filelock.Manager and every Space satisfy it, and the three
// commands run the same code (admin.go) on both.
type Admin interface {
	AllocateLock() (lock.Locker, error)
	AllocateAndRetrieveLock(id uint32) (lock.Locker, error)
	RetrieveLock(id uint32) (lock.Locker, error)
	Allocated() ([]uint32, error) // ascending
	FreeAllLocks() error
}

var _ Admin = (*filelock.Manager)(nil)

// A Space is a lock space on a cluster: lock.Manager's calls that the
// commands use, with errors in place of panics.
type Space interface {
	Admin
	// Where names the lock space in messages, as a directory's path
	// does on files.
	Where() string
	Capacity() uint32
	// Holders lists the holder and the waiters of every lock that has
	// any, in ID order, each lock's holder first.
	Holders() ([]ClusterHolder, error)
	// Lock takes lock id, waiting until ctx is done if wait is set, and
	// returns nil, nil if the lock is busy and wait is not set.
	Lock(ctx context.Context, id uint32, wait bool) (Held, error)
	Close() error
}

// A Held lock on a cluster.
type Held interface {
	// Lost is closed when the lock is lost before Unlock: the holder's
	// lease expired or was revoked, or the cluster was out of reach for
	// longer than the lease's TTL.
	Lost() <-chan struct{}
	Token() int64 // the fencing token of this hold
	// Check asks the cluster whether the hold still stands, and returns
	// an error if it does not or the cluster cannot say: Lost closes
	// only once the client notices, which a holder that was stopped past
	// its TTL may not have done yet.
	Check(ctx context.Context) error
	Unlock()
}

// ClusterHolder is a holder or a waiter of a lock on a cluster, named as
// the process put itself in its key: host and PID.
type ClusterHolder struct {
	ID      uint32
	Host    string
	PID     int
	Waiting bool
}

// cluster is the Cluster that RunCluster was given, or nil in the plain
// lockdir.
var cluster Cluster

// RunCluster is Run for the etcd-enabled lockdir: with --etcd or
// $LOCKDIR_ETCD, the commands work on a lock space of c instead of a lock
// directory.
func RunCluster(args []string, c Cluster) int {
	cluster = c
	return Run(args)
}

// DefaultPrefix is the lock space's key prefix unless --prefix says
// otherwise.
const DefaultPrefix = "/lockdir/"

// DefaultClusterTimeout bounds the dial and each request to the cluster
// unless --dial-timeout says otherwise.
const DefaultClusterTimeout = 5 * time.Second

// maxTTL is etcd's largest lease TTL (its MaxLeaseTTL, 9,000,000,000 s):
// above it every lease grant fails (found by review: lock retried that for
// ever).
const maxTTL = 9_000_000_000 * time.Second

// clusterFlags are the flags that select a cluster; they are accepted
// everywhere the global flags are.
type clusterFlags struct {
	etcd, cacert, cert, key, prefix, timeout, ttl string
	set                                           []string // the names given, for errors
}

// declare adds the cluster flags to fs.
func (c *clusterFlags) declare(fs *flag.FlagSet) {
	for _, f := range []struct {
		name  string
		p     *string
		usage string
	}{
		{"etcd", &c.etcd, "use the etcd cluster at these comma-separated host:port endpoints instead of a lock directory (default $LOCKDIR_ETCD; etcd-enabled lockdir only)"},
		{"cacert", &c.cacert, "etcd: verify the servers' certificates with this CA bundle"},
		{"cert", &c.cert, "etcd: identify with this TLS client certificate"},
		{"key", &c.key, "etcd: the client certificate's key"},
		{"prefix", &c.prefix, "etcd: the lock space's key prefix (default $LOCKDIR_ETCD_PREFIX, else " + DefaultPrefix + ")"},
		{"dial-timeout", &c.timeout, "etcd: give up on an unreachable cluster after this long (default 5s)"},
		{"ttl", &c.ttl, "etcd: the lease TTL of lock's holder, whole seconds: a dead holder's lock is free within it (default 10s)"},
	} {
		fs.Func(f.name, f.usage, func(v string) error { *f.p = v; c.set = append(c.set, f.name); return nil })
	}
}

// lookup returns the field of flag name, for lock's own parser.
func (c *clusterFlags) lookup(name string) *string {
	switch name {
	case "etcd":
		return &c.etcd
	case "cacert":
		return &c.cacert
	case "cert":
		return &c.cert
	case "key":
		return &c.key
	case "prefix":
		return &c.prefix
	case "dial-timeout":
		return &c.timeout
	case "ttl":
		return &c.ttl
	}
	return nil
}

// endpoints returns the cluster's endpoints, from --etcd or
// $LOCKDIR_ETCD, or "" to use the lock directory. A --etcd given empty
// is returned as it is, so that onCluster refuses it, rather than the
// environment's cluster used in its place.
func (c *clusterFlags) endpoints() string {
	if c.etcd != "" || slices.Contains(c.set, "etcd") {
		return c.etcd
	}
	return os.Getenv("LOCKDIR_ETCD")
}

// errNoCluster is the plain lockdir's answer to --etcd or $LOCKDIR_ETCD:
// falling back on the local directory would exclude nothing across
// machines, which is what the user asked for.
func errNoCluster(cmd string) error {
	return errorf(exitUsage,
		"build the etcd-enabled lockdir with 'make bin/lockdir-etcd', or 'cd etcdlock && go install ./cmd/lockdir' in a checkout of lockdir; or unset LOCKDIR_ETCD to use a lock directory",
		"%s: this lockdir is built without etcd support, and --etcd or $LOCKDIR_ETCD asks for an etcd cluster", cmd)
}

// onCluster reports whether the command runs on a cluster, and fails if it
// should but cannot: in the plain lockdir, or with a lock directory's flag
// or an unsupported command.
func (g *globals) onCluster(cmd string) (bool, error) {
	eps := g.cl.endpoints()
	if eps == "" {
		if slices.Contains(g.cl.set, "etcd") {
			return false, usageError(cmd, "%s: --etcd is empty: want host:port,...", cmd)
		}
		if len(g.cl.set) > 0 {
			return false, usageError(cmd, "%s: --%s needs --etcd or $LOCKDIR_ETCD", cmd, g.cl.set[0])
		}
		return false, nil
	}
	if cluster == nil {
		return false, errNoCluster(cmd)
	}
	switch cmd {
	case "init", "alloc", "free", "free-all", "status", "lock":
	default:
		return false, usageError(cmd, "%s: works on a lock directory only, not on etcd (--etcd or $LOCKDIR_ETCD)", cmd)
	}
	for _, f := range []struct{ name, v string }{{"dir", g.dir}, {"group", g.group}} {
		if f.v != "" {
			return false, usageError(cmd, "%s: --%s names a lock directory; it means nothing on etcd (--etcd or $LOCKDIR_ETCD)", cmd, f.name)
		}
	}
	return true, nil
}

// clusterConfig is the configuration of the cluster that the flags and
// $LOCKDIR_ETCD name.
func (g *globals) clusterConfig(cmd string) (ClusterConfig, error) {
	c := ClusterConfig{CACert: g.cl.cacert, Cert: g.cl.cert, Key: g.cl.key, Prefix: g.cl.prefix, Timeout: DefaultClusterTimeout}
	for _, e := range strings.Split(g.cl.endpoints(), ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.Endpoints = append(c.Endpoints, e)
		}
	}
	if len(c.Endpoints) == 0 {
		return c, usageError(cmd, "%s: --etcd %q names no endpoint: want host:port,...", cmd, g.cl.endpoints())
	}
	if c.Prefix == "" {
		c.Prefix = os.Getenv("LOCKDIR_ETCD_PREFIX")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if (c.Cert == "") != (c.Key == "") {
		return c, usageError(cmd, "%s: --cert and --key go together", cmd)
	}
	if c.CACert != "" || c.Cert != "" {
		// etcd's client drops the TLS settings for an http endpoint, in
		// any case of the scheme, and talks to it in plaintext, verifying
		// nothing (found by review). unix:// keeps them.
		for _, e := range c.Endpoints {
			if scheme, _, ok := strings.Cut(e, "://"); ok && strings.EqualFold(scheme, "http") {
				return c, usageError(cmd, "%s: --cacert, --cert and --key need TLS, but endpoint %s is plaintext http: write https://HOST:PORT or HOST:PORT", cmd, e)
			}
		}
	}
	if g.cl.timeout != "" {
		d, err := time.ParseDuration(g.cl.timeout)
		if err != nil || d <= 0 {
			return c, usageError(cmd, "%s: --dial-timeout %q is not a positive duration such as 5s", cmd, g.cl.timeout)
		}
		c.Timeout = d
	}
	if g.cl.ttl != "" {
		d, err := time.ParseDuration(g.cl.ttl)
		if err != nil || d < time.Second || d > maxTTL {
			return c, usageError(cmd, "%s: --ttl %q is not a duration from 1s to %v, such as 10s", cmd, g.cl.ttl, maxTTL)
		}
		c.TTL = d
	}
	return c, nil
}

// openSpace opens the cluster's lock space, creating it with numLocks locks
// if it is missing and numLocks is not 0.
func (g *globals) openSpace(cmd string, numLocks uint32) (Space, error) {
	c, err := g.clusterConfig(cmd)
	if err != nil {
		return nil, err
	}
	s, err := cluster.Open(c, numLocks)
	if err != nil {
		return nil, spaceError(c, err)
	}
	return s, nil
}

// spaceReadError explains an error from reading the open lock space s.
// Keys that lockdir did not write are the space's corruption; the advice
// is etcd's, not the lock directory's "move it aside" (found by review).
func spaceReadError(s Space, what string, err error) error {
	err = fmt.Errorf("%s: %s: %w", s.Where(), what, err)
	if errors.Is(err, lock.ErrCorrupt) {
		return &exitError{code: exitDir, err: err,
			hint: "the lock space holds keys that lockdir did not write: list them with 'etcdctl get --prefix --keys-only PREFIX' and remove them, or pick another prefix with --prefix"}
	}
	return err
}

// spaceChangedHint is the advice for lock.ErrCorrupt from a lock or a
// change on etcd: etcdlock found the lock space deleted, or deleted and
// made again, since lockdir opened it (its locks and allocations went with
// it), or, for a change, a key there that lockdir did not write. The
// advice is etcd's, not a lock directory's registry's (review 15).
const spaceChangedHint = "the lock space was deleted (etcdctl del --prefix) or made again while lockdir used it, or holds keys that lockdir did not write: run 'lockdir status' to see what is there now, and 'lockdir init' to make it again if it is gone"

// spaceChangeError gives err, from a lock or a change in an open lock
// space, exit code exitDir and spaceChangedHint if it matches
// lock.ErrCorrupt and has no code of its own yet.
func spaceChangeError(err error) error {
	var e *exitError
	if !errors.Is(err, lock.ErrCorrupt) || errors.As(err, &e) {
		return err
	}
	return &exitError{code: exitDir, err: err, hint: spaceChangedHint}
}

// tlsOrDown is the hint for a cluster that did not answer in time. etcd's
// client retries a failed TLS handshake quietly until its deadline, so a
// certificate that the server or this client refuses, or TLS on one side
// only, ends as the same timeout as a cluster that is down (review 10c).
const tlsOrDown = "check --etcd or $LOCKDIR_ETCD, and that the cluster is up and reachable; a TLS mismatch (--cacert, --cert, --key against the server's, or TLS on one side only) gives this same timeout; --dial-timeout bounds the wait"

// spaceError explains an error from opening a lock space. Like a lock
// directory's, every such error has exit code exitDir.
func spaceError(c ClusterConfig, err error) error {
	where := fmt.Sprintf("etcd lock space %s at %s", c.Prefix, strings.Join(c.Endpoints, ","))
	e := &exitError{code: exitDir, err: fmt.Errorf("%s: %w", where, err)}
	switch {
	case errors.Is(err, lock.ErrCorrupt):
		e.hint = "pick another prefix with --prefix, or clean up the keys under this one with etcdctl"
	case errors.Is(err, os.ErrNotExist):
		e.err = fmt.Errorf("%s does not exist", where)
		e.hint = "create it with 'lockdir init', or pick another with --prefix"
	case errors.Is(err, context.DeadlineExceeded):
		e.hint = tlsOrDown
	default:
		e.hint = "check --etcd or $LOCKDIR_ETCD, --cacert, --cert and --key"
	}
	return e
}
