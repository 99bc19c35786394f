// Package oneproc sets GOMAXPROCS to 1 as early as a package can: lockdir's
// mains import it for that alone.
//
// Every lockdir command does one thing at a time. It waits in flock(2),
// wait4(2) or a read, and handles a signal now and then; 'lockdir check'
// runs its workers as processes. A second P only costs: the runtime wakes
// its thread to spin for work each time a goroutine is made runnable, and
// signal.Notify's round trips to the runtime's signal-mask thread alone
// made that about 0.2 ms of CPU per 'lockdir lock' (issue 12). A goroutine
// blocked in a system call still hands its P over, so a signal or a -w
// timeout during a wait is still seen at once.
//
// Why a package init, and why this one: shrinking to one P destroys the
// other, and flushes the spans that its allocation cache holds into span
// sets that no P has used yet, each a new page to fault in. The main
// goroutine often runs on the second P by the time main is called, with
// the spans of every package init in that cache: 'lockdir lock' took about
// 20 more page faults with the call at the start of the command than here,
// and ran 5% longer (docs/performance.md, "Round seven"). The runtime
// initializes packages in import-path order among those whose imports are
// done; this one imports only the runtime, so its init runs before almost
// every other package's, before any of them has allocated.
//
// A GOMAXPROCS of 1 in the environment costs nothing here: the runtime
// starts with one P, and the call returns at once. Any other value in the
// environment is overridden, for lockdir's process only; the command that
// 'lockdir lock' runs gets the environment as it was.
package oneproc

import "runtime"

func init() {
	runtime.GOMAXPROCS(1)
}
