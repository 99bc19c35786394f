// Package locktest checks implementations of lock.Manager against the
// contract documented in package lock, in the spirit of testing/fstest.
//
// An implementation runs the suite from its own tests. The suite starts
// copies of the test binary as child processes to check that locks exclude
// other processes, so the implementation's test package must route its
// TestMain through Main:
//
//	func TestMain(m *testing.M) {
//		locktest.Main(m, func(dir string) (lock.Manager, error) {
//			return mylock.Open(dir)
//		})
//	}
//
//	func TestConformance(t *testing.T) {
//		locktest.Run(t, locktest.Harness{
//			New: func(t *testing.T, capacity uint32) (lock.Manager, string) {
//				dir := t.TempDir()
//				m, err := mylock.Create(dir, capacity)
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { m.Close() })
//				return m, dir
//			},
//			Open: func(dir string) (lock.Manager, error) {
//				return mylock.Open(dir)
//			},
//		})
//	}
//
// Where package lock leaves room, the suite expects what Podman's managers
// do: AllocateLock returns the lowest free ID (unless Harness.AnyFreeID is
// set); a Locker may be unlocked by a goroutine other than the one that
// locked it; FreeAllLocks leaves held locks held; and a lock whose holder
// is killed is free again within two seconds (or Harness.KillRelease).
// Harness.CounterPatience gives slower managers, such as one on a network
// service, more time for the checks that lock thousands of times. Managers
// whose Lockers also implement RWLocker are checked for shared locking too,
// with the rules of sync.RWMutex, writer preference included.
//
// Run the suite with the race detector: the checks that share ordinary
// memory between Lockers of one Manager rely on Unlock happening before the
// next Lock in the sense of the Go memory model, as with sync.Mutex. Between
// two handles on the same locks, which may synchronize only through the
// operating system, the suite shares memory through atomic operations only.
//
// Child processes talk to the test through their standard input and
// output, so the implementation must not write to standard output.
//
// Files: locktest.go is the API (Harness, Main, Setup, Run) and the
// helpers every check uses; contract.go checks the contract from one
// goroutine, goroutines.go between goroutines, process.go between
// processes (with the child side), and shared.go the shared locks of an
// RWLocker. The suite's own tests run it on a reference manager of flock'd
// files (ref_unix_test.go) and, in locktest_test.go, on in-memory managers
// with deliberate bugs (mem_test.go, memrw_test.go for shared locks), to see
// each check fail where it should.
package locktest
