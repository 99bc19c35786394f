package etcdlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"weak"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/lock"
)

// MaxLocks is the largest capacity of a lock space.
const MaxLocks = math.MaxUint32

// header is the value of the meta key.
type header struct {
	Format   string `json:"format"`
	Version  int    `json:"version"`
	Capacity uint32 `json:"capacity"`
}

// Manager is a lock space in etcd opened by this process. It implements
// lock.Manager. A Manager is safe for concurrent use by multiple
// goroutines, and any number of Managers, in any number of processes on any
// number of hosts, may use the same lock space at once.
type Manager struct {
	cli      *clientv3.Client
	k        keys
	opts     options
	capacity uint32
	metaRev  int64 // create revision of the meta key, to notice a new space

	ctx    context.Context // canceled by Close; parent of every request
	cancel context.CancelFunc
	closed atomic.Bool

	sessMu sync.Mutex
	sess   *session // current session, or nil

	attempts atomic.Uint64 // numbers the holder keys' puts (withdrawUnknown)

	statesMu sync.Mutex
	states   map[uint32]weak.Pointer[lockState]
	pinned   map[uint32]*lockState // states whose lock is held (pin)
}

var _ lock.Manager = (*Manager)(nil)

// New opens the lock space under prefix in the cluster cli talks to,
// creating it with room for numLocks locks if it does not exist. Many
// clients may call New at once: exactly one creates the space, and the
// others join it.
//
// Capacity mismatches are handled as filelock.OpenOrCreate handles them: an
// existing space keeps the capacity stored in etcd, whatever numLocks says;
// compare Capacity to check it. A numLocks of 0 joins an existing space
// only, as filelock.Open does, and fails with an error matching
// fs.ErrNotExist if there is none.
//
// A slash is appended to prefix unless it ends in one. New refuses, with an
// error matching lock.ErrCorrupt, a prefix under which etcd holds keys that
// are not a lock space's, and a prefix that overlaps another lock space: one
// whose prefix contains this one, or one inside it.
//
// New does not take ownership of cli: Close leaves it open. If the cluster
// cannot be reached, New fails within the timeout (WithTimeout).
func New(cli *clientv3.Client, prefix string, numLocks uint32, opts ...Option) (*Manager, error) {
	if cli == nil {
		return nil, &fs.PathError{Op: "open", Path: prefix, Err: errors.New("nil etcd client")}
	}
	if prefix == "" || strings.ContainsRune(prefix, 0) {
		return nil, &fs.PathError{Op: "open", Path: prefix, Err: errors.New("empty lock space prefix or one holding a NUL byte")}
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cli:    cli,
		k:      keys{p: prefix},
		opts:   o,
		ctx:    ctx,
		cancel: cancel,
		states: make(map[uint32]weak.Pointer[lockState]),
		pinned: make(map[uint32]*lockState),
	}
	if err := m.setup(numLocks); err != nil {
		cancel()
		return nil, err
	}
	return m, nil
}

// setup creates or joins the lock space in one transaction: if the space,
// its prefix and every ancestor's meta key are empty, it writes the header
// and one free range; otherwise it reads what it needs to join or refuse.
func (m *Manager) setup(numLocks uint32) error {
	k := m.k
	var cmps []clientv3.Cmp
	var reads []clientv3.Op
	for _, a := range k.ancestors() {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(a+metaKey), "=", 0))
		reads = append(reads, clientv3.OpGet(a+metaKey))
	}
	reads = append(reads, clientv3.OpGet(k.meta()))
	for _, g := range k.gaps() {
		reads = append(reads, clientv3.OpGet(g[0], clientv3.WithRange(g[1]), clientv3.WithKeysOnly(), clientv3.WithLimit(1)))
	}
	ctx, cancel := m.reqCtx()
	defer cancel()
	var resp *clientv3.TxnResponse
	var err error
	if numLocks == 0 {
		resp, err = m.readTxn(ctx, reads...)
	} else {
		// etcd reads every key of a range compared, and stops at the
		// first compare that fails: the meta key goes first, so that
		// joining a large space does not read all of it.
		cmps = append(cmps,
			clientv3.Compare(clientv3.CreateRevision(k.meta()), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(k.p), "=", 0).WithPrefix())
		b, _ := json.Marshal(header{Format: formatName, Version: formatMajor, Capacity: numLocks})
		resp, err = m.cli.Txn(ctx).If(cmps...).Then(
			clientv3.OpPut(k.meta(), string(b)),
			clientv3.OpPut(k.free(uint64(numLocks)), "0"),
		).Else(reads...).Commit()
	}
	if err != nil {
		return m.etcdErr("open", k.p, err)
	}
	if numLocks != 0 && resp.Succeeded {
		m.capacity = numLocks
		m.metaRev = resp.Header.Revision
		return nil
	}
	rs := resp.Responses
	for i, a := range k.ancestors() {
		if len(rs[i].GetResponseRange().Kvs) > 0 {
			return &fs.PathError{Op: "open", Path: k.p, Err: fmt.Errorf("prefix overlaps the lock space at %q: %w", a, lock.ErrCorrupt)}
		}
	}
	rs = rs[len(k.ancestors()):]
	meta := rs[0].GetResponseRange().Kvs
	for _, r := range rs[1:] {
		if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 {
			return &fs.PathError{Op: "open", Path: k.p, Err: fmt.Errorf("prefix holds key %q, which is not a lock space's: %w", kvs[0].Key, lock.ErrCorrupt)}
		}
	}
	if len(meta) == 0 {
		if numLocks == 0 {
			return &fs.PathError{Op: "open", Path: k.meta(), Err: fs.ErrNotExist}
		}
		// The creation failed, yet there is no header and nothing in the
		// gaps: the keys are in the lock space's directories, orphaned.
		return &fs.PathError{Op: "open", Path: k.p, Err: fmt.Errorf("prefix holds keys but no %s key: %w", metaKey, lock.ErrCorrupt)}
	}
	var h header
	if err := json.Unmarshal(meta[0].Value, &h); err != nil || h.Format != formatName || h.Capacity == 0 {
		return &fs.PathError{Op: "open", Path: k.meta(), Err: fmt.Errorf("not a lock space header: %q: %w", meta[0].Value, lock.ErrCorrupt)}
	}
	if h.Version != formatMajor {
		return &fs.PathError{Op: "open", Path: k.meta(), Err: fmt.Errorf("format version %d, want %d: %w", h.Version, formatMajor, errors.ErrUnsupported)}
	}
	m.capacity = h.Capacity
	m.metaRev = meta[0].CreateRevision
	return nil
}

// Capacity returns the number of lock IDs in the space, as stored in etcd
// when it was created.
func (m *Manager) Capacity() uint32 { return m.capacity }

// Prefix returns the lock space's prefix, ending in a slash.
func (m *Manager) Prefix() string { return m.k.p }

// Close releases every lock held through the Manager, by revoking its
// session lease, and makes further calls fail with lock.ErrClosed. Lost
// channels of held locks are closed. It does not close the etcd client.
func (m *Manager) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.sessMu.Lock()
	s := m.sess
	m.sess = nil
	m.sessMu.Unlock()
	var err error
	if s != nil {
		err = s.close(m.opts.timeout)
	}
	m.cancel()
	if err != nil {
		return m.etcdErr("close", m.k.p, err)
	}
	return nil
}

// reqCtx returns the context of one bounded request.
func (m *Manager) reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.ctx, m.opts.timeout)
}

// etcdErr wraps an error of an etcd request on path, saying which
// endpoints did not answer in time.
func (m *Manager) etcdErr(op, path string, err error) error {
	switch {
	case m.closed.Load() && errors.Is(err, context.Canceled):
		err = lock.ErrClosed
	case errors.Is(err, context.DeadlineExceeded):
		err = fmt.Errorf("etcd at %s did not answer within %v: %w", strings.Join(m.cli.Endpoints(), ","), m.opts.timeout, err)
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

func (m *Manager) errClosed() error {
	return &fs.PathError{Op: "use", Path: m.k.p, Err: lock.ErrClosed}
}
