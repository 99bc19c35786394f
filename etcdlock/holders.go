package etcdlock

import (
	"cmp"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/lock"
)

// Holder is a process that holds or waits for a lock, as its holder key
// names it: every process puts "host pid" in its keys (os.Hostname and
// os.Getpid), for humans; nothing checks it.
type Holder struct {
	ID      uint32
	Host    string // "" if the key's value does not say
	PID     int    // 0 if the key's value does not say
	Waiting bool   // queued behind the holder, not holding
	Token   int64  // the key's create revision: the fencing token once it holds
}

// Holders returns, for every lock that some process holds or waits for,
// its holder and then its waiters in the order they will get it, in ID
// order. It is one read of the holder keys, at one revision.
func (m *Manager) Holders() ([]Holder, error) {
	if m.closed.Load() {
		return nil, m.errClosed()
	}
	ctx, cancel := m.reqCtx()
	defer cancel()
	resp, err := m.cli.Get(ctx, m.k.lockDir(), clientv3.WithPrefix())
	if err != nil {
		return nil, m.etcdErr("list", m.k.lockDir(), err)
	}
	out := make([]Holder, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		id, ok := m.k.parseID(string(kv.Key), lockDir)
		if !ok || id >= m.capacity {
			return nil, &fs.PathError{Op: "read", Path: string(kv.Key), Err: fmt.Errorf("not a lock key: %w", lock.ErrCorrupt)}
		}
		h := Holder{ID: id, Token: kv.CreateRevision}
		if host, pid, ok := strings.Cut(string(kv.Value), " "); ok {
			h.Host = host
			h.PID, _ = strconv.Atoi(pid)
		}
		out = append(out, h)
	}
	// Keys come in key order, which is ID order, then lease order; the
	// holder is the oldest key of its ID.
	slices.SortStableFunc(out, func(a, b Holder) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Token, b.Token))
	})
	for i := range out {
		out[i].Waiting = i > 0 && out[i-1].ID == out[i].ID
	}
	return out, nil
}
