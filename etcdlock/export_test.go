package etcdlock

// SetLaggingWatch makes waiters watch from revision 1, replaying the lock
// directory's history as a lagging member's watch would.
func SetLaggingWatch(on bool) { lagWatch.Store(on) }
