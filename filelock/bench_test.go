//go:build linux

package filelock_test

// Benchmarks for docs/performance.md. Every benchmark that has a budget is
// paired with baselines measured in the same run, so that results are read
// as ratios, which survive a noisy machine better than absolute times.
//
//	go test -run '^$' -bench . -benchmem -count 10 ./filelock/ | tee bench.txt
//	benchstat bench.txt
//
// Go reports the mean of each run; benchstat reports the median of the
// -count runs, with a confidence interval.
//
// Environment:
//
//	LOCKDIR_BENCH_BIG=1   also run the O_EXCL-scan baseline at 999,999 of
//	                      1,000,000 locks: it creates 999,999 files once
//	                      (tens of seconds) and costs ~1M syscalls per op.
//	LOCKDIR_BENCH_DIR=d   make the lock directories under d (for example
//	                      /dev/shm, a tmpfs like /run) instead of the
//	                      default temporary directory.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"

	"github.com/lockdir/lockdir/filelock"
	"github.com/lockdir/lockdir/lock"
)

// benchDir returns an empty directory removed when tb ends.
func benchDir(tb testing.TB) string {
	tb.Helper()
	parent := os.Getenv("LOCKDIR_BENCH_DIR")
	if parent == "" {
		return tb.TempDir()
	}
	d, err := os.MkdirTemp(parent, "lockdir-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// newManager creates a lock directory of the given capacity in which the
// IDs 0 to fill-1 are allocated.
func newManager(tb testing.TB, capacity, fill uint32, opts ...filelock.Option) *filelock.Manager {
	tb.Helper()
	m, err := filelock.Create(filepath.Join(benchDir(tb), "locks"), capacity, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	if fill > 0 {
		ids := make([]uint32, fill)
		for i := range ids {
			ids[i] = uint32(i)
		}
		if err := filelock.SetAllocatedForTest(m, ids); err != nil {
			tb.Fatal(err)
		}
	}
	return m
}

// allocatedLocker returns a lock of m that has been locked and unlocked once, so
// that its file is open: the state of a lock in steady use.
func allocatedLocker(tb testing.TB, m *filelock.Manager) *filelock.Locker {
	tb.Helper()
	fl, err := m.Allocate()
	if err != nil {
		tb.Fatal(err)
	}
	fl.Lock()
	fl.Unlock()
	return fl
}

// steadyLocker returns a lock in steady use (allocatedLocker) of a new
// directory of filelock.DefaultNumLocks locks.
func steadyLocker(b *testing.B) *filelock.Locker {
	b.Helper()
	return allocatedLocker(b, newManager(b, filelock.DefaultNumLocks, 0))
}

// openFile opens (creating) path for a raw flock baseline.
func openFile(tb testing.TB, path string) int {
	tb.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	return fd
}

// cpuMeter reports, besides Go's wall-clock ns/op, the process's user+system
// CPU time per op (getrusage RUSAGE_SELF, every thread, GC included) as
// cpu-ns/op. On a shared machine wall time includes waiting for a CPU;
// CPU time mostly does not, so it is the steadier of the two.
type cpuMeter struct {
	b            *testing.B
	total, since time.Duration
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPU resets the benchmark timer and starts the CPU meter.
func startCPU(b *testing.B) *cpuMeter {
	b.ReportAllocs()
	b.ResetTimer()
	return &cpuMeter{b: b, since: cpuTime()}
}

func (c *cpuMeter) pause() {
	c.total += cpuTime() - c.since
	c.b.StopTimer()
}

func (c *cpuMeter) resume() {
	c.b.StartTimer()
	c.since = cpuTime()
}

func (c *cpuMeter) report() {
	c.pause()
	c.b.ReportMetric(float64(c.total.Nanoseconds())/float64(c.b.N), "cpu-ns/op")
}

func must(b *testing.B, err error) {
	if err != nil {
		b.Fatal(err)
	}
}

// podmanLock is the lock of a file-per-lock backend that opens the file and
// takes a POSIX record lock on every Lock, and closes it on Unlock, which
// drops the lock: open + fcntl(F_SETLKW) + close per Lock/Unlock pair.
func podmanLock(b *testing.B, path string) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	must(b, err)
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	must(b, unix.FcntlFlock(uintptr(fd), unix.F_SETLKW, &lk))
	must(b, unix.Close(fd))
}

// BenchmarkLockUnlock is an uncontended Lock+Unlock pair on an allocated
// lock whose file is already open. Budget: lockdir ≤ 1.2 × rawflock, and
// 0 allocs/op.
func BenchmarkLockUnlock(b *testing.B) {
	b.Run("lockdir", func(b *testing.B) {
		l := steadyLocker(b)
		defer startCPU(b).report()
		for range b.N {
			l.Lock()
			l.Unlock()
		}
	})
	// flock(LOCK_EX) + flock(LOCK_UN) on a descriptor that stays open: the
	// two system calls lockdir cannot avoid.
	b.Run("rawflock", benchRawFlock(unix.LOCK_EX))
	// gofrs/flock opens the file on Lock and closes it on Unlock.
	b.Run("gofrs", func(b *testing.B) {
		f := flock.New(filepath.Join(benchDir(b), "0"))
		defer startCPU(b).report()
		for range b.N {
			must(b, f.Lock())
			must(b, f.Unlock())
		}
	})
	b.Run("podman-fcntl", func(b *testing.B) {
		path := filepath.Join(benchDir(b), "0")
		defer startCPU(b).report()
		for range b.N {
			podmanLock(b, path)
		}
	})
}

// BenchmarkTryLockUnlock is an uncontended TryLock+Unlock pair.
func BenchmarkTryLockUnlock(b *testing.B) {
	b.Run("lockdir", func(b *testing.B) {
		l := steadyLocker(b)
		defer startCPU(b).report()
		for range b.N {
			if !l.TryLock() {
				b.Fatal("TryLock failed")
			}
			l.Unlock()
		}
	})
	b.Run("rawflock", benchRawFlock(unix.LOCK_EX|unix.LOCK_NB))
}

// benchRawFlock returns the baseline of a lock and unlock pair: flock(2)
// with how (LOCK_EX for Lock, LOCK_EX|LOCK_NB for TryLock and LockContext,
// LOCK_SH for RLock), then LOCK_UN, on a descriptor kept open.
func benchRawFlock(how int) func(b *testing.B) {
	return func(b *testing.B) {
		fd := openFile(b, filepath.Join(benchDir(b), "0"))
		defer startCPU(b).report()
		for range b.N {
			must(b, unix.Flock(fd, how))
			must(b, unix.Flock(fd, unix.LOCK_UN))
		}
	}
}

// BenchmarkLockContextUnlock is an uncontended LockContext+Unlock pair.
// With a context that can be cancelled LockContext tries a non-blocking
// flock first, which succeeds here, and would start a kernel waiter only if
// the lock were busy; with context.Background it is Lock.
func BenchmarkLockContextUnlock(b *testing.B) {
	b.Run("lockdir-cancellable", func(b *testing.B) {
		l := steadyLocker(b)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		defer startCPU(b).report()
		for range b.N {
			must(b, l.LockContext(ctx))
			l.Unlock()
		}
	})
	b.Run("lockdir-background", func(b *testing.B) {
		l := steadyLocker(b)
		ctx := context.Background()
		defer startCPU(b).report()
		for range b.N {
			must(b, l.LockContext(ctx))
			l.Unlock()
		}
	})
	b.Run("rawflock", benchRawFlock(unix.LOCK_EX|unix.LOCK_NB))
}

// BenchmarkRLockUnlock is an uncontended RLock+RUnlock pair on a lock
// whose file is open. Budget: the same 2 system calls and 0 allocs/op as
// Lock+Unlock. Its baseline, rawflock-sh, is a LOCK_SH+LOCK_UN pair on a
// descriptor kept open; read it next to BenchmarkLockUnlock/rawflock (the
// LOCK_EX pair) of the same run. "join" is a reader joining another reader
// of the process that holds the lock, which makes no system call; its
// baseline is sync.RWMutex.
func BenchmarkRLockUnlock(b *testing.B) {
	b.Run("lockdir", func(b *testing.B) {
		l := steadyLocker(b)
		defer startCPU(b).report()
		for range b.N {
			l.RLock()
			l.RUnlock()
		}
	})
	b.Run("lockdir-cancellable", func(b *testing.B) {
		l := steadyLocker(b)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		defer startCPU(b).report()
		for range b.N {
			must(b, l.RLockContext(ctx))
			l.RUnlock()
		}
	})
	b.Run("rawflock-sh", benchRawFlock(unix.LOCK_SH))
	b.Run("join/lockdir", func(b *testing.B) {
		l := steadyLocker(b)
		l.RLock()
		defer l.RUnlock()
		defer startCPU(b).report()
		for range b.N {
			l.RLock()
			l.RUnlock()
		}
	})
	b.Run("join/rwmutex", func(b *testing.B) {
		var mu sync.RWMutex
		mu.RLock()
		defer mu.RUnlock()
		defer startCPU(b).report()
		for range b.N {
			mu.RLock()
			mu.RUnlock()
		}
	})
}

// BenchmarkLockUnlockParallel is Lock+Unlock from GOMAXPROCS goroutines at
// once. "same" is one lock shared by every goroutine (in-process
// contention); "distinct" gives each goroutine its own lock (scaling). The
// baseline for "same" is what a caller would otherwise write: a sync.Mutex
// around flock on one descriptor, since flock alone does not exclude
// goroutines sharing a descriptor.
func BenchmarkLockUnlockParallel(b *testing.B) {
	b.Run("same/lockdir", func(b *testing.B) {
		l := steadyLocker(b)
		defer startCPU(b).report()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Lock()
				l.Unlock()
			}
		})
	})
	b.Run("same/mutex+rawflock", func(b *testing.B) {
		fd := openFile(b, filepath.Join(benchDir(b), "0"))
		var mu sync.Mutex
		defer startCPU(b).report()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
					panic(err)
				}
				if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
					panic(err)
				}
				mu.Unlock()
			}
		})
	})
	b.Run("distinct/lockdir", func(b *testing.B) {
		m := newManager(b, filelock.DefaultNumLocks, 0)
		var next atomic.Uint32
		defer startCPU(b).report()
		b.RunParallel(func(pb *testing.PB) {
			l, err := m.RetrieveLock(next.Add(1))
			if err != nil {
				panic(err)
			}
			for pb.Next() {
				l.Lock()
				l.Unlock()
			}
		})
	})
	b.Run("distinct/rawflock", func(b *testing.B) {
		dir := benchDir(b)
		var next atomic.Uint32
		defer startCPU(b).report()
		b.RunParallel(func(pb *testing.PB) {
			path := filepath.Join(dir, strconv.Itoa(int(next.Add(1))))
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
			if err != nil {
				panic(err)
			}
			defer unix.Close(fd)
			for pb.Next() {
				if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
					panic(err)
				}
				if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
					panic(err)
				}
			}
		})
	})
}

// fills are the allocation states measured: half of Podman's default
// doubled, and a million locks with only the last one free.
var fills = []struct {
	name           string
	capacity, fill uint32
	big            bool // the O_EXCL baseline is opt-in
}{
	{"2048of4096", 4096, 2048, false},
	{"999999of1000000", 1_000_000, 999_999, true},
}

func bigEnabled() bool { return os.Getenv("LOCKDIR_BENCH_BIG") == "1" }

// BenchmarkAllocateFree is AllocateLock (lowest free ID) followed by Free
// of that lock, in a directory where IDs 0 to fill-1 are allocated, so that
// every AllocateLock returns ID fill. Budget: flat in the fill, and at most
// 20 µs median without fsync.
func BenchmarkAllocateFree(b *testing.B) {
	for _, f := range fills {
		for _, fsync := range []bool{false, true} {
			name := f.name + "/lockdir"
			if fsync {
				name += "-fsync"
			}
			b.Run(name, func(b *testing.B) {
				m := newManager(b, f.capacity, f.fill, filelock.WithFsync(fsync))
				l, err := m.AllocateLock()
				must(b, err)
				if l.ID() != f.fill {
					b.Fatalf("AllocateLock returned ID %d, want %d", l.ID(), f.fill)
				}
				must(b, l.Free())
				defer startCPU(b).report()
				for range b.N {
					l, err := m.AllocateLock()
					if err != nil {
						b.Fatal(err)
					}
					if err := l.Free(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(f.name+"/oexcl-scan", func(b *testing.B) {
			if f.big && !bigEnabled() {
				b.Skip("set LOCKDIR_BENCH_BIG=1 to run the O_EXCL scan over 999,999 files")
			}
			dir, names := oexclDir(b, f.capacity, f.fill)
			defer startCPU(b).report()
			for range b.N {
				id := oexclAllocate(b, dir, names)
				if id != f.fill {
					b.Fatalf("scan found ID %d, want %d", id, f.fill)
				}
				must(b, unix.Unlinkat(dir, names[id], 0))
			}
		})
	}
}

// oexclAllocate is the allocation of a backend that keeps no registry: it
// creates files 0, 1, 2, ... with O_EXCL until one does not exist yet.
func oexclAllocate(b *testing.B, dir int, names []string) uint32 {
	for id, name := range names {
		fd, err := unix.Openat(dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		must(b, err)
		must(b, unix.Close(fd))
		return uint32(id)
	}
	b.Fatal("no free lock")
	return 0
}

// oexclDirs caches the O_EXCL directories, which are slow to fill, across
// the rounds and -count runs of a benchmark. TestMain removes them.
var oexclDirs = map[uint32]*oexclState{}

type oexclState struct {
	path  string
	fd    int
	names []string
}

// oexclDir returns a directory holding files 0 to fill-1, opened, and the
// names of IDs 0 to capacity-1.
func oexclDir(b *testing.B, capacity, fill uint32) (int, []string) {
	if s := oexclDirs[fill]; s != nil {
		return s.fd, s.names
	}
	parent := os.Getenv("LOCKDIR_BENCH_DIR")
	path, err := os.MkdirTemp(parent, "lockdir-oexcl-")
	must(b, err)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(b, err)
	s := &oexclState{path: path, fd: fd, names: make([]string, capacity)}
	oexclDirs[fill] = s
	for i := range s.names {
		s.names[i] = strconv.Itoa(i)
	}
	for _, name := range s.names[:fill] {
		fd, err := unix.Openat(s.fd, name, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		must(b, err)
		unix.Close(fd)
	}
	return s.fd, s.names
}

// removeBenchDirs removes the O_EXCL baseline directories that the
// benchmarks cache across runs of one binary; TestMain calls it.
func removeBenchDirs() {
	for _, s := range oexclDirs {
		unix.Close(s.fd)
		os.RemoveAll(s.path)
	}
}

// BenchmarkOpen is Open of an existing directory, which maps and verifies
// the registry. Close is not timed. Budget: ≤ 5 ms at 1,000,000 locks.
func BenchmarkOpen(b *testing.B) {
	for _, c := range []struct {
		name           string
		capacity, fill uint32
	}{
		{"2048of4096", 4096, 2048},
		{"999999of1000000", 1_000_000, 999_999},
		{"MaxLocks", filelock.MaxLocks, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := newManager(b, c.capacity, c.fill)
			dir := m.Dir()
			must(b, m.Close())
			c := startCPU(b)
			defer c.report()
			for range b.N {
				m, err := filelock.Open(dir)
				if err != nil {
					b.Fatal(err)
				}
				c.pause()
				must(b, m.Close())
				c.resume()
			}
		})
	}
}

// BenchmarkRetrieveLock is RetrieveLock of an ID that another Locker in
// the process already refers to, with 2,048 of 4,096 locks allocated. It
// takes the master lock shared to read the capacity.
func BenchmarkRetrieveLock(b *testing.B) {
	m := newManager(b, 4096, 2048)
	keep, err := m.RetrieveLock(7)
	must(b, err)
	defer startCPU(b).report()
	for range b.N {
		if _, err := m.RetrieveLock(7); err != nil {
			b.Fatal(err)
		}
	}
	runtime.KeepAlive(keep)
}

// BenchmarkLocksHeld is LocksHeld with 2,048 of 4,096 locks allocated,
// none of them held, or all 2,048 held by this process. It reads the
// registry and /proc/locks, and lists the locks directory when anything on
// its device is locked.
func BenchmarkLocksHeld(b *testing.B) {
	for _, held := range []int{0, 2048} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			m := newManager(b, 4096, 2048)
			var ls []lock.Locker
			for id := range uint32(held) {
				l, err := m.RetrieveLock(id)
				must(b, err)
				l.Lock()
				ls = append(ls, l)
			}
			defer func() {
				for _, l := range ls {
					l.Unlock()
				}
			}()
			ids, err := m.LocksHeld()
			must(b, err)
			if len(ids) != held {
				// /proc/locks is read in chunks and is not a snapshot:
				// other processes' lock changes can hide entries.
				b.Logf("LocksHeld found %d locks, want %d", len(ids), held)
			}
			defer startCPU(b).report()
			for range b.N {
				if _, err := m.LocksHeld(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
