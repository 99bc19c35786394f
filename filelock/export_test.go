//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import "time"

// This file exports internals to the black-box tests and benchmarks of
// package filelock_test. It is compiled only by go test.

// SetAllocatedForTest makes exactly ids allocated in m's registry, keeping
// its capacity. It writes the image newRegistry builds and swaps it in with
// the same atomic replace (temporary file, fsync, rename) that Resize and
// FreeAllLocks use, under the master lock.
//
// It exists so that benchmarks can reach a state such as 999,999 of
// 1,000,000 locks allocated in milliseconds: a million AllocateLock calls
// would take many seconds. The registry it leaves is the one those calls
// would leave, except that every bitmap page has sequence number 0 and the
// journal is empty, which no operation's cost depends on.
func SetAllocatedForTest(m *Manager, ids []uint32) error {
	return m.withRegistry(true, func(v *view) error {
		return m.reg.replace(m.dirFD, newRegistry(v.capacity, ids))
	})
}

// RegistryPathForTest returns the path of m's registry file.
func RegistryPathForTest(m *Manager) string { return m.reg.path }

// SetRecheckAfterForTest sets how long a kept lock file descriptor is
// trusted before Lock checks it against the file's name again
// (recheck.go), and returns a function that restores the old value. It is
// not safe to call while Managers are in use.
func SetRecheckAfterForTest(d time.Duration) (restore func()) {
	old := recheckAfter
	recheckAfter = d
	return func() { recheckAfter = old }
}
