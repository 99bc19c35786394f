package filelock

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/lockdir/lockdir/lock"
)

// guard runs fn, turning a fault on the registry mapping (the file was
// truncated under us by something other than lockdir) into ErrCorrupt
// instead of a crash.
func (m *Manager) guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if re, ok := r.(runtime.Error); ok {
				if _, fault := r.(interface{ Addr() uintptr }); fault {
					err = &fs.PathError{Op: "read", Path: m.reg.path, Err: corruptf("fault reading registry: %v", re)}
					return
				}
			}
			panic(r)
		}
	}()
	return fn()
}

func (m *Manager) lockMaster(how int) error {
	if m.opts.timeout <= 0 {
		if err := flock(m.masterFD, how); err != nil {
			return &fs.PathError{Op: "flock", Path: filepath.Join(m.dir, masterName), Err: err}
		}
		return nil
	}
	path := filepath.Join(m.dir, masterName)
	deadline := time.Now().Add(m.opts.timeout)
	delay := 50 * time.Microsecond
	for {
		err := flock(m.masterFD, how|lockNB)
		if err == nil {
			return nil
		}
		if !isWouldBlock(err) {
			return &fs.PathError{Op: "flock", Path: path, Err: err}
		}
		if time.Now().After(deadline) {
			return &fs.PathError{Op: "flock", Path: path, Err: fmt.Errorf("registry busy for over %v; a process holding %s may be stopped or hung: %w", m.opts.timeout, masterName, os.ErrDeadlineExceeded)}
		}
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Millisecond)
	}
}

func (m *Manager) unlockMaster() { _ = flock(m.masterFD, lockUn) }

// withRegistry runs fn on a current view of the registry while holding the
// master lock, exclusively if the operation may write.
func (m *Manager) withRegistry(exclusive bool, fn func(v *view) error) error {
	m.regMu.Lock()
	defer m.regMu.Unlock()
	if m.closed.Load() {
		return lock.ErrClosed
	}
	how := lockSh
	if exclusive {
		how = lockEx
	}
	if err := m.lockCurrentMaster(how); err != nil {
		return err
	}
	defer m.unlockMaster()
	err := m.reg.refresh(m.dirFD)
	if ranOutOfFiles(err) && m.freeDescriptors() {
		err = m.reg.refresh(m.dirFD)
	}
	if err != nil {
		return err
	}
	return m.guard(func() error {
		v, err := m.reg.view()
		if err != nil {
			return err
		}
		m.capacity.Store(v.capacity)
		if exclusive {
			if err := m.reg.recover(v); err != nil {
				return err
			}
		}
		return fn(v)
	})
}
