// Command etcd-demo shows etcdlock at work: it starts an etcd server inside
// itself (unless -etcd names a cluster), makes a lock space, and starts
// worker processes, copies of itself, that contend for one lock. Each
// worker increments a counter kept in etcd while it holds the lock, and
// guards the write with its fencing token, as a storage service should.
//
//	go run ./cmd/etcd-demo                    # embedded etcd, two workers
//	go run ./cmd/etcd-demo -etcd host:2379    # an existing cluster
//	go run ./cmd/etcd-demo -etcd host:2379 -worker -id 1
//	go run ./cmd/etcd-demo -serve etcd.addr   # an etcd for lockdir --etcd
//
// With -worker it plays one worker on the cluster at -etcd, so that
// workers on several machines can share one lock space.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
)

var (
	endpoints = flag.String("etcd", "", "comma-separated etcd endpoints; empty starts an embedded etcd")
	prefix    = flag.String("prefix", "/lockdir-demo/", "lock space prefix")
	workers   = flag.Int("workers", 2, "worker processes to start")
	rounds    = flag.Int("rounds", 5, "times each worker takes the lock")
	hold      = flag.Duration("hold", 200*time.Millisecond, "how long a worker holds the lock each time")
	worker    = flag.Bool("worker", false, "play one worker on the cluster at -etcd")
	id        = flag.Int("id", 1, "this worker's number, for its output")
	serve     = flag.String("serve", "", "only serve an embedded etcd until SIGINT or SIGTERM, and write its host:port to `FILE`, for lockdir --etcd")
)

func main() {
	flag.Parse()
	var err error
	switch {
	case *serve != "":
		err = runServe(*serve)
	case *worker:
		err = runWorker()
	default:
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd-demo:", err)
		os.Exit(1)
	}
}

// Keys of the demo's fenced counter, beside the lock space.
func counterKey() string { return strings.TrimSuffix(*prefix, "/") + "-counter" }
func fenceKey() string   { return strings.TrimSuffix(*prefix, "/") + "-fence" }

// token formats a fencing token so that etcd's string comparison of values
// orders tokens as numbers.
func token(t int64) string { return fmt.Sprintf("%020d", t) }

func client() (*clientv3.Client, error) {
	var eps []string
	for _, e := range strings.Split(*endpoints, ",") {
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		eps = append(eps, e)
	}
	return etcdtest.NewClient(eps)
}

// run starts the server if needed, sets up the lock space and the counter,
// runs the workers and checks the counter.
func run() error {
	if *endpoints == "" {
		dir, err := os.MkdirTemp("", "etcd-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		start := time.Now()
		c, err := etcdtest.Start(dir, 1, etcdtest.Options{})
		if err != nil {
			return err
		}
		defer c.Close()
		*endpoints = strings.Join(c.Endpoints(), ",")
		fmt.Printf("started an embedded etcd at %s in %v\n", *endpoints, time.Since(start).Round(time.Millisecond))
	}
	cli, err := client()
	if err != nil {
		return err
	}
	defer cli.Close()
	m, err := etcdlock.New(cli, *prefix, 16, etcdlock.WithTTL(2*time.Second))
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut(counterKey(), "0"), clientv3.OpPut(fenceKey(), token(0))).Commit(); err != nil {
		return err
	}
	fmt.Printf("lock space %s: capacity %d; %d workers will each take lock 0 %d times\n", m.Prefix(), m.Capacity(), *workers, *rounds)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, *workers)
	for w := range *workers {
		cmd := exec.Command(exe, "-worker", "-etcd", *endpoints, "-prefix", *prefix,
			"-rounds", strconv.Itoa(*rounds), "-hold", hold.String(), "-id", strconv.Itoa(w+1))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		wg.Go(func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				fmt.Println(sc.Text())
			}
			errs[w] = cmd.Wait()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	resp, err := cli.Get(context.Background(), counterKey())
	if err != nil {
		return err
	}
	want := strconv.Itoa(*workers * *rounds)
	if got := string(resp.Kvs[0].Value); got != want {
		return fmt.Errorf("counter is %s, want %s: an update was lost", got, want)
	}
	fmt.Printf("counter is %s: every increment made it, none overlapped\n", want)
	return nil
}

// runWorker takes lock 0 -rounds times, incrementing the counter each time
// under a write fenced by the hold's token.
func runWorker() error {
	cli, err := client()
	if err != nil {
		return err
	}
	defer cli.Close()
	m, err := etcdlock.New(cli, *prefix, 0, etcdlock.WithTTL(2*time.Second))
	if err != nil {
		return err
	}
	defer m.Close()
	l, err := m.Retrieve(0)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	for range *rounds {
		l.Lock()
		tok := l.Token()
		if err := increment(cli, tok, l.Lost()); err != nil {
			l.Unlock()
			return err
		}
		fmt.Printf("worker %d (%s pid %d): holding lock 0 with token %d\n", *id, host, os.Getpid(), tok)
		time.Sleep(*hold)
		l.Unlock()
	}
	return nil
}

// increment adds one to the counter, in a transaction that succeeds only if
// no holder with a larger token has written since: the fencing pattern of
// docs/etcd.md.
func increment(cli *clientv3.Client, tok int64, lost <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, counterKey())
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(string(resp.Kvs[0].Value))
	select {
	case <-lost:
		return errors.New("lock lost before the write")
	default:
	}
	// The fence refuses a holder whose token is below one that already
	// wrote (it lost the lock, and does not know yet); the mod revision
	// refuses a write based on a read that another write overtook.
	t, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(fenceKey()), "<", token(tok+1)),
			clientv3.Compare(clientv3.ModRevision(counterKey()), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpPut(fenceKey(), token(tok)), clientv3.OpPut(counterKey(), strconv.Itoa(n+1))).
		Commit()
	if err != nil {
		return err
	}
	if !t.Succeeded {
		return fmt.Errorf("write with token %d refused: a later holder or another write came first", tok)
	}
	return nil
}

// runServe serves an embedded etcd until SIGINT or SIGTERM, for the
// etcd-enabled lockdir (make etcd-cli-demo). It writes the client address,
// host:port, to file once the server is ready: by a rename, so that a
// reader never sees half of it.
func runServe(file string) error {
	dir, err := os.MkdirTemp("", "etcd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := etcdtest.Start(dir, 1, etcdtest.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	addr := strings.TrimPrefix(c.Endpoints()[0], "http://")
	if err := os.WriteFile(file+".tmp", []byte(addr+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "etcd-demo: serving an embedded etcd at %s until SIGINT or SIGTERM\n", addr)
	<-stop
	return nil
}
