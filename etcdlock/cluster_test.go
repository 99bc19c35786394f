package etcdlock_test

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
)

// Sizes of the cluster test.
const (
	clusterClients = 8
	clusterTTL     = 3 * time.Second
	envMarker      = "ETCDLOCK_MARKER"
	envTTL         = "ETCDLOCK_TTL"
)

// Keys of the fenced counter, beside the lock space at prefix.
func counterKeys(prefix string) (counter, fence string) {
	p := strings.TrimSuffix(prefix, "/")
	return p + "-counter", p + "-fence"
}

func fenceValue(tok int64) string { return fmt.Sprintf("%020d", tok) }

// TestClusterFencedCounter runs a 3-member cluster, each member's peer port
// behind a proxy that can cut it off, and 8 child processes that contend
// for one lock, each incrementing a counter in etcd with a write fenced by
// its token. Meanwhile the leader is stopped and restarted, and then the
// new leader is partitioned from the other members for longer than the TTL,
// and healed. Every accepted write is checked: the counter takes each value
// once (no lost update), tokens rise with the counter (no stale-token write
// accepted), and no two holds overlapped unless one of them was reported
// lost. It runs with LOCKDIR_ETCD_CLUSTER=short, about half a minute, or
// long, whose phases are five times longer.
func TestClusterFencedCounter(t *testing.T) {
	scale := time.Duration(1)
	switch os.Getenv("LOCKDIR_ETCD_CLUSTER") {
	case "short":
	case "long":
		scale = 5
	default:
		t.Skip("half a minute with a 3-member cluster: LOCKDIR_ETCD_CLUSTER=short (make cluster-etcd) or long (make soak-etcd)")
	}
	part := etcdtest.NewPartitioner()
	defer part.Close()
	c, err := etcdtest.Start(t.TempDir(), 3, etcdtest.Options{TickMs: 100, ElectionMs: 1000, PeerAdvertise: part.Advertise})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	part.Learn(c)
	cli, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	prefix := newPrefix(t)
	m, err := etcdlock.New(cli, prefix, 4, etcdlock.WithTTL(clusterTTL))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	counter, fence := counterKeys(prefix)
	ctx := context.Background()
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut(counter, "0"), clientv3.OpPut(fence, fenceValue(0))).Commit(); err != nil {
		t.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "inside")
	type kid struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines []string
		done  chan struct{}
	}
	var kids []*kid
	address := strings.Join(c.Endpoints(), ",") + "|" + prefix
	for i := range clusterClients {
		k := &kid{done: make(chan struct{})}
		k.cmd = exec.Command(exe, "-test.run=^$")
		k.cmd.Env = append(os.Environ(), envChild+"=cluster-count", envAddr+"="+address,
			envID+"="+strconv.Itoa(i), envMarker+"="+marker, envTTL+"="+clusterTTL.String())
		k.cmd.Stderr = os.Stderr
		if k.stdin, err = k.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		out, err := k.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := k.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(k.done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				k.lines = append(k.lines, sc.Text())
			}
		}()
		kids = append(kids, k)
	}
	defer func() {
		for _, k := range kids {
			k.cmd.Process.Kill()
			k.cmd.Wait()
		}
	}()

	leader := func() *etcdtest.Member {
		for range 100 {
			for _, mb := range c.Members {
				if mb.IsLeader() {
					return mb
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("no leader within 10 s")
		return nil
	}
	phase := func(what string, d time.Duration) {
		t.Logf("%s for %v", what, d*scale)
		time.Sleep(d * scale)
	}
	phase("contending", 3*time.Second)
	l := leader()
	l.Stop()
	phase("leader "+l.Name+" stopped", 3*time.Second)
	if err := l.Restart(); err != nil {
		t.Fatal(err)
	}
	phase(l.Name+" restarted", 3*time.Second)
	l = leader()
	part.Partition(l.Name)
	phase("leader "+l.Name+" partitioned", 2*clusterTTL)
	part.Heal()
	phase("healed", 3*time.Second)
	for _, k := range kids {
		k.stdin.Close()
	}
	var lines []string
	for i, k := range kids {
		select {
		case <-k.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("client %d did not finish within 30 s of its input's end", i)
		}
		if err := k.cmd.Wait(); err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		lines = append(lines, k.lines...)
	}

	// Analyse what the clients saw.
	type write struct {
		tok   int64
		value int
	}
	var writes []write
	lost := map[int64]bool{}
	var refused, overlaps, silentOverlaps, holds, silent int
	var overlapPairs [][2]int64
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "ref" && len(f) < 3) {
			t.Errorf("client printed %q", line)
			continue
		}
		n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
		switch f[0] {
		case "acc":
			writes = append(writes, write{n(1), int(n(2))})
		case "ref":
			refused++
		case "hold":
			holds++
			lost[n(1)] = f[2] == "lost"
			switch f[2] {
			case "lost":
				t.Logf("hold %d: lost; Lost closed %s ms after the hold's end", n(1), f[3])
			case "silent":
				silent++
				t.Errorf("hold %d: lost (write refused or key gone), but Lost did not close within %v", n(1), 4*clusterTTL)
			}
		case "overlap":
			overlaps++
			overlapPairs = append(overlapPairs, [2]int64{n(1), n(2)})
		}
	}
	for _, p := range overlapPairs {
		if !lost[p[0]] && !lost[p[1]] {
			silentOverlaps++
			t.Errorf("holds with tokens %d and %d overlapped, and neither was reported lost", p[0], p[1])
		}
	}
	slices.SortFunc(writes, func(a, b write) int { return a.value - b.value })
	lostUpdates, stale := 0, 0
	for i, w := range writes {
		if w.value != i+1 {
			lostUpdates++
			t.Errorf("accepted write %d set the counter to %d", i+1, w.value)
		}
		if i > 0 && w.tok <= writes[i-1].tok {
			stale++
			t.Errorf("write of %d with token %d accepted after one with token %d", w.value, w.tok, writes[i-1].tok)
		}
	}
	resp, err := cli.Get(ctx, counter)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(resp.Kvs[0].Value), strconv.Itoa(len(writes)); got != want {
		lostUpdates++
		t.Errorf("counter is %s, but %s writes were accepted", got, want)
	}
	nLost := 0
	for _, l := range lost {
		if l {
			nLost++
		}
	}
	if len(writes) < clusterClients {
		t.Errorf("only %d writes accepted in the whole run", len(writes))
	}
	t.Logf("FIGURE cluster: %d holds, %d writes accepted, %d refused (stale token), %d holds lost (%d silently), %d overlaps, %d of them with no lost hold, %d lost updates, %d stale-token writes accepted",
		holds, len(writes), refused, nLost, silent, overlaps, silentOverlaps, lostUpdates, stale)
}

// childClusterCount takes lock 0 over and over until its input ends, and
// increments the counter once per hold with a fenced write, reporting each
// event on standard output:
//
//	acc <token> <value>      a write accepted, setting the counter to value
//	ref <token>              a write refused: a larger token wrote first
//	overlap <token> <other>  another hold was inside on entry
//	hold <token> <state> <ms>  a hold ended: kept (its key still there),
//	                         lost (Lost closed, ms after the hold's end),
//	                         or silent (write refused or key gone, and
//	                         Lost still open after four TTLs)
func childClusterCount() error {
	addr := os.Getenv(envAddr)
	ttl, err := time.ParseDuration(os.Getenv(envTTL))
	if err != nil {
		return err
	}
	eps, prefix, _ := strings.Cut(addr, "|")
	cli, err := etcdtest.NewClient(strings.Split(eps, ","))
	if err != nil {
		return err
	}
	defer cli.Close()
	m, err := etcdlock.New(cli, prefix, 0, etcdlock.WithTTL(ttl), etcdlock.WithTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer m.Close()
	l, err := m.Retrieve(0)
	if err != nil {
		return err
	}
	counter, fence := counterKeys(prefix)
	marker := os.Getenv(envMarker)
	var mu sync.Mutex
	emit := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	var eof atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		eof.Store(true)
	}()
	for !eof.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := l.LockContext(ctx)
		cancel()
		if err != nil {
			continue
		}
		tok := l.Token()
		lost := l.Lost()
		mine := strconv.FormatInt(tok, 10)
		// The marker is made whole, then linked in place, which fails if
		// another hold's marker is there: no reader sees it half written.
		tmp := fmt.Sprintf("%s.%d", marker, os.Getpid())
		if err := os.WriteFile(tmp, []byte(mine), 0o600); err != nil {
			return err
		}
		if err := os.Link(tmp, marker); errors.Is(err, os.ErrExist) {
			other, _ := os.ReadFile(marker)
			emit("overlap %d %s", tok, cmp.Or(string(other), "0"))
		} else if err != nil {
			return err
		}
		os.Remove(tmp)
		refused := fencedIncrement(cli, counter, fence, tok, lost, emit)
		if b, err := os.ReadFile(marker); err == nil && string(b) == mine {
			os.Remove(marker)
		}
		// A refused write, or a holder key gone before Unlock, proves the
		// hold was lost: Lost must say so, within the TTL and the
		// client's half-second deadline scan after the server expired
		// the lease, or a little later if the client had no answer from
		// the cluster meanwhile. A hold whose key is still there was
		// kept: no other hold can have overlapped it.
		state := "kept"
		start := time.Now()
		select {
		case <-lost:
			state = "lost"
		default:
			if refused || !keyAlive(cli, prefix, tok) {
				select {
				case <-lost:
					state = "lost"
				case <-time.After(4 * ttl):
					state = "silent"
				}
			}
		}
		if state == "silent" {
			// Say what etcd holds, for the test's log.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := cli.Get(ctx, prefix+"lock/", clientv3.WithPrefix())
			if err == nil {
				for _, kv := range resp.Kvs {
					ttl, _ := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
					fmt.Fprintf(os.Stderr, "pid %d hold %d silent: key %s create %d lease %x ttl %v value %q\n",
						os.Getpid(), tok, kv.Key, kv.CreateRevision, kv.Lease, ttl.TTL, kv.Value)
				}
			}
			cancel()
		}
		emit("hold %d %s %d", tok, state, time.Since(start).Milliseconds())
		l.Unlock()
	}
	return nil
}

// keyAlive reports whether the holder key with create revision tok is still
// under lock 0 of the space at prefix, retrying etcd errors for a while.
func keyAlive(cli *clientv3.Client, prefix string, tok int64) bool {
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := cli.Get(ctx, prefix+"lock/0000000000/", clientv3.WithPrefix())
		cancel()
		if err != nil {
			continue
		}
		for _, kv := range resp.Kvs {
			if kv.CreateRevision == tok {
				return true
			}
		}
		return false
	}
	return true // unknown: count it as kept, the strict choice
}

// fencedIncrement adds one to the counter under token tok, retrying etcd
// errors until the write is accepted, refused (then it returns true), or
// the hold is lost.
func fencedIncrement(cli *clientv3.Client, counter, fence string, tok int64, lost <-chan struct{}, emit func(string, ...any)) (refused bool) {
	for {
		select {
		case <-lost:
			return false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := cli.Txn(ctx).Then(clientv3.OpGet(counter), clientv3.OpGet(fence)).Commit()
		if err != nil {
			cancel()
			continue
		}
		cur := resp.Responses[0].GetResponseRange().Kvs[0]
		f := string(resp.Responses[1].GetResponseRange().Kvs[0].Value)
		switch {
		case f == fenceValue(tok):
			// An earlier attempt, whose answer was lost, was applied.
			emit("acc %d %s", tok, cur.Value)
			cancel()
			return false
		case f > fenceValue(tok):
			emit("ref %d", tok)
			cancel()
			return true
		}
		n, _ := strconv.Atoi(string(cur.Value))
		t, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(fence), "<", fenceValue(tok+1)),
				clientv3.Compare(clientv3.ModRevision(counter), "=", cur.ModRevision)).
			Then(clientv3.OpPut(fence, fenceValue(tok)), clientv3.OpPut(counter, strconv.Itoa(n+1))).
			Commit()
		cancel()
		if err == nil && t.Succeeded {
			emit("acc %d %d", tok, n+1)
			return false
		}
		// Refused or unknown: read again to learn which.
	}
}
