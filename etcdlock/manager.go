package etcdlock

import (
	"runtime"
	"sync/atomic"
	"weak"

	"github.com/lockdir/lockdir/lock"
)

// lockState is the in-process side of one lock ID, shared by every Locker
// for that ID from one Manager.
//
// sem is the in-process mutex. The etcd mutex alone cannot be one: its
// holder key is named by the session lease, which every goroutine of the
// Manager shares, so two goroutines would both find themselves the owner.
// A goroutine first takes sem, then the etcd mutex, so at most one
// goroutine per Manager and ID has a key in etcd, and the rest wait, parked,
// on the channel.
type lockState struct {
	sem  chan struct{}        // full while a goroutine holds or is taking the lock
	hold atomic.Pointer[hold] // the current hold, or nil; Unlock clears it first
	id   uint32
}

// hold is one acquisition of a lock in etcd.
type hold struct {
	key  string   // the holder key, bound to the session's lease
	rev  int64    // its create revision: the fencing token
	sess *session // the session the key is bound to
}

// RetrieveLock is Retrieve as lock.Manager has it.
func (m *Manager) RetrieveLock(id uint32) (lock.Locker, error) { return asLocker(m.Retrieve(id)) }

// Retrieve returns the lock with the given ID without allocating it, and
// without a request to etcd. It fails with an error matching
// lock.ErrInvalidID if id is not below the capacity New read (a space
// made again since with a larger one is found by the next change, as
// lock.ErrCorrupt).
func (m *Manager) Retrieve(id uint32) (*Locker, error) {
	if m.closed.Load() {
		return nil, m.errClosed()
	}
	if id >= m.capacity {
		return nil, m.errIDNoRead(id)
	}
	return m.locker(id), nil
}

// locker returns a Locker for id, sharing the in-process state of every
// other Locker for id from this Manager.
func (m *Manager) locker(id uint32) *Locker {
	return &Locker{m: m, st: m.state(id)}
}

func (m *Manager) state(id uint32) *lockState {
	m.statesMu.Lock()
	defer m.statesMu.Unlock()
	if st := m.states[id].Value(); st != nil {
		return st
	}
	st := &lockState{sem: make(chan struct{}, 1), id: id}
	m.states[id] = weak.Make(st)
	// Forget the entry once no Locker refers to the state any more, so
	// that touching many IDs costs no lasting memory.
	runtime.AddCleanup(st, m.forget, id)
	return st
}

// pin keeps st, whose lock is now held through this Manager, from being
// collected until unpin: states are referred to weakly (forget), and a
// state collected while its lock is held would let a Locker retrieved
// afterwards find the holder key under this session and adopt it, a second
// holder in the process with the same token (review 10c).
func (m *Manager) pin(st *lockState) {
	m.statesMu.Lock()
	defer m.statesMu.Unlock()
	m.pinned[st.id] = st
}

// unpin ends pin, once the lock is released and its key deleted.
func (m *Manager) unpin(st *lockState) {
	m.statesMu.Lock()
	defer m.statesMu.Unlock()
	delete(m.pinned, st.id)
}

func (m *Manager) forget(id uint32) {
	m.statesMu.Lock()
	defer m.statesMu.Unlock()
	if m.states[id].Value() == nil {
		delete(m.states, id)
	}
}
