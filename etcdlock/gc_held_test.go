package etcdlock_test

import (
	"runtime"
	"testing"
	"time"
)

// TestHeldLockSurvivesGC (review 10c): a lock is held by this process, and
// the program keeps no reference to the Locker it locked through, as in
//
//	m.RetrieveLock(id).Lock()   // or a Container struct that is dropped
//	...
//	m.RetrieveLock(id).Unlock()
//
// lock.Locker says that RetrieveLock returns "another instance of the same
// lock", and the Locker doc that a Locker excludes "every other Locker for
// its ID, in this process or another". But the in-process state of an ID
// (its sem and hold) is only weakly referenced by the Manager
// (manager.go: states is a map of weak.Pointer, with a cleanup that
// forgets the entry), so once the GC collects it, a Locker retrieved
// afterwards gets a fresh state: an empty sem and no hold. Its TryLock or
// Lock then puts the holder key under the same session, finds the key
// already there (acquireIn's Else branch) and adopts it: a second holder
// in the same process, with the same fencing token as the first, which a
// fenced store accepts (tok >= the largest seen). And Unlock through it of
// the first hold panics, "Unlock of unlocked lock".
func TestHeldLockSurvivesGC(t *testing.T) {
	m := newManager(t, 4)
	first := locker(t, m, 2)
	first.Lock()
	tok := first.Token()
	first = nil // the holder keeps no reference to its Locker
	for range 5 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	second := locker(t, m, 2)
	if got := second.Token(); got != tok {
		t.Errorf("Token through another Locker of the held ID = %d, want the hold's %d", got, tok)
	}
	if second.TryLock() {
		t.Errorf("TryLock through another Locker of ID 2 succeeded while the lock is held in this process; its token %d, the first hold's %d", second.Token(), tok)
		second.Unlock()
		return
	}
	// The lock is still held: Unlock through another instance of the same
	// lock releases it.
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("Unlock of the held lock through another Locker panicked: %v", r)
			}
		}()
		second.Unlock()
	}()
}
