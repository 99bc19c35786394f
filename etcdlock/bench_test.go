package etcdlock_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc"

	"github.com/lockdir/lockdir/etcdlock"
)

// The benchmarks compare etcdlock with etcd's own concurrency.Mutex on the
// same embedded server in the same run; report ratios (benchstat), not
// absolute times, which depend on the machine's load.

// BenchmarkUncontended is one Lock and Unlock of a free lock.
func BenchmarkUncontended(b *testing.B) {
	b.Run("impl=Mutex", func(b *testing.B) {
		cli := newClient(b)
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		mu := concurrency.NewMutex(s, newPrefix(b))
		ctx := context.Background()
		for b.Loop() {
			if err := mu.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := mu.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=Locker", func(b *testing.B) {
		l := locker(b, newManager(b, 4), 0)
		for b.Loop() {
			l.Lock()
			l.Unlock()
		}
	})
}

// BenchmarkHandoff is one Lock and Unlock while a child process locks and
// unlocks the same lock in a loop: etcd queues the two in turn, so every
// Lock waits for a handoff from the other process.
func BenchmarkHandoff(b *testing.B) {
	for _, impl := range []string{"Mutex", "Locker"} {
		b.Run("impl="+impl, func(b *testing.B) {
			m := newManager(b, 4)
			stop := startContender(b, impl, m)
			defer stop()
			lockUnlock := handoffLocker(b, impl, m)
			for b.Loop() {
				lockUnlock()
			}
		})
	}
}

// handoffLocker returns one Lock and Unlock of lock 0 of m's space, through
// impl.
func handoffLocker(b *testing.B, impl string, m *etcdlock.Manager) func() {
	if impl == "Locker" {
		l := locker(b, m, 0)
		return func() { l.Lock(); l.Unlock() }
	}
	s, err := concurrency.NewSession(newClient(b), concurrency.WithTTL(10))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	mu := concurrency.NewMutex(s, mutexPrefix(m))
	ctx := context.Background()
	return func() {
		if err := mu.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := mu.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// mutexPrefix is where the Mutex benchmarks keep their mutex: beside the
// lock space, not in it.
func mutexPrefix(m *etcdlock.Manager) string { return strings.TrimSuffix(m.Prefix(), "/") + "-mutex" }

// startContender starts a child that locks and unlocks lock 0 through impl
// until its input ends, and waits until it has locked once.
func startContender(b *testing.B, impl string, m *etcdlock.Manager) (stop func()) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=contend", envAddr+"="+addr(m), envImpl+"="+impl, envMutex+"="+mutexPrefix(m))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("contender: %v", err)
	}
	return func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				b.Errorf("contender: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			b.Error("contender did not stop")
		}
	}
}

const (
	envImpl  = "ETCDLOCK_IMPL"
	envMutex = "ETCDLOCK_MUTEX"
)

// childContend locks and unlocks lock 0 through $ETCDLOCK_IMPL until its
// standard input ends, printing a line after the first Lock.
func childContend() error {
	om, err := openOwned(os.Getenv(envAddr))
	if err != nil {
		return err
	}
	defer om.Close()
	var lockUnlock func() error
	if os.Getenv(envImpl) == "Locker" {
		l, _ := om.RetrieveLock(0)
		lockUnlock = func() error { l.Lock(); l.Unlock(); return nil }
	} else {
		s, err := concurrency.NewSession(om.cli, concurrency.WithTTL(10))
		if err != nil {
			return err
		}
		defer s.Close()
		mu := concurrency.NewMutex(s, os.Getenv(envMutex))
		ctx := context.Background()
		lockUnlock = func() error {
			if err := mu.Lock(ctx); err != nil {
				return err
			}
			return mu.Unlock(ctx)
		}
	}
	if err := lockUnlock(); err != nil {
		return err
	}
	fmt.Println("ready")
	var eof atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		eof.Store(true)
	}()
	for !eof.Load() {
		if err := lockUnlock(); err != nil {
			return err
		}
	}
	return nil
}

// rpcCounter counts the unary gRPC calls (round trips) of a client.
type rpcCounter struct{ n atomic.Int64 }

func (c *rpcCounter) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.n.Add(1)
	return invoker(ctx, method, req, reply, cc, opts...)
}

// countingClient returns a client of the shared server whose round trips c
// counts.
func countingClient(b *testing.B, c *rpcCounter) *clientv3.Client {
	cli := newClientWith(b, grpc.WithChainUnaryInterceptor(c.intercept))
	b.Cleanup(func() { cli.Close() })
	return cli
}

// BenchmarkAllocate is an AllocateLock and a Free of the ID it returns, in
// a space of the given capacity with the given number of IDs allocated
// (0, 1, ..., filled-1, put straight into etcd). It reports the round trips
// of each call; empty space is the baseline.
func BenchmarkAllocate(b *testing.B) {
	for _, tc := range []struct{ filled, capacity uint32 }{
		{0, 4096},
		{2048, 4096},
		{99_999, 100_000},
	} {
		b.Run(fmt.Sprintf("filled=%d/capacity=%d", tc.filled, tc.capacity), func(b *testing.B) {
			var rpcs rpcCounter
			cli := countingClient(b, &rpcs)
			prefix := newPrefix(b)
			m, err := etcdlock.New(cli, prefix, tc.capacity)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			fill(b, cli, prefix, tc.filled, tc.capacity)
			if n, err := m.AvailableLocks(); err != nil || *n != tc.capacity-tc.filled {
				b.Fatalf("after filling: AvailableLocks = %v, %v", n, err)
			}
			var allocRPCs, freeRPCs int64
			for b.Loop() {
				before := rpcs.n.Load()
				l, err := m.AllocateLock()
				if err != nil {
					b.Fatal(err)
				}
				mid := rpcs.n.Load()
				if l.ID() != tc.filled {
					b.Fatalf("AllocateLock = %d, want %d", l.ID(), tc.filled)
				}
				if err := l.Free(); err != nil {
					b.Fatal(err)
				}
				allocRPCs += mid - before
				freeRPCs += rpcs.n.Load() - mid
			}
			b.ReportMetric(float64(allocRPCs)/float64(b.N), "alloc-rtt/op")
			b.ReportMetric(float64(freeRPCs)/float64(b.N), "free-rtt/op")
		})
	}
}

// fill allocates IDs 0 to filled-1 of the space at prefix by writing its
// keys directly, as many allocations would leave them, 128 to a
// transaction (etcd's default limit).
func fill(b *testing.B, cli *clientv3.Client, prefix string, filled, capacity uint32) {
	ctx := context.Background()
	key := func(dir string, n uint32) string { return fmt.Sprintf("%s%s/%010d", prefix, dir, n) }
	if filled > 0 {
		if _, err := cli.Put(ctx, key("free", capacity), strconv.Itoa(int(filled))); err != nil {
			b.Fatal(err)
		}
	}
	var ops []clientv3.Op
	flush := func() {
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for id := range filled {
		ops = append(ops, clientv3.OpPut(key("alloc", id), ""))
		if len(ops) == 128 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
}
