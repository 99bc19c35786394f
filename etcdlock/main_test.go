package etcdlock_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
	"github.com/lockdir/lockdir/lock"
	"github.com/lockdir/lockdir/lock/locktest"
)

// testTTL is the lease TTL of the tests' managers: short, so that killed
// holders free their locks soon, but three keepalives long on a loaded
// machine.
const testTTL = 2 * time.Second

// server is the embedded etcd that every test of the package shares; each
// test works under its own prefix.
var server *etcdtest.Cluster

// TestMain dispatches child processes, this package's own roles (runChild)
// and the conformance suite's (locktest.Setup); otherwise it starts the
// embedded etcd, runs the tests and stops it.
func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	locktest.Setup(openAddr)
	dir, err := os.MkdirTemp("", "etcdlock-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server, err = etcdtest.Start(filepath.Join(dir, "etcd"), 1, etcdtest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	server.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

var prefixes atomic.Int64

// newPrefix returns a prefix that no other test uses.
func newPrefix(t testing.TB) string {
	return fmt.Sprintf("/lockdir-test/%s/%d/", strings.ReplaceAll(t.Name(), "/", "."), prefixes.Add(1))
}

// newClient returns a client of the shared server, closed when t ends.
func newClient(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := etcdtest.NewClient(server.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// newClientWith returns a client of the test server dialled with opts
// (interceptors that fail, delay or count requests), closed when t ends.
func newClientWith(t testing.TB, opts ...grpc.DialOption) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   server.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: opts,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// newProxiedClient returns a client of the test server through a proxy
// that the test can hold or cut, both ended when t ends.
func newProxiedClient(t testing.TB) (*etcdtest.TCPProxy, *clientv3.Client) {
	t.Helper()
	p := etcdtest.StartTCPProxy(t, strings.TrimPrefix(server.Endpoints()[0], "http://"))
	t.Cleanup(p.Release)
	cli, err := etcdtest.NewClient([]string{p.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return p, cli
}

// newManager makes a lock space of the given capacity under a new prefix,
// with a client of its own, and closes it when t ends.
func newManager(t testing.TB, capacity uint32, opts ...etcdlock.Option) *etcdlock.Manager {
	t.Helper()
	m, err := etcdlock.New(newClient(t), newPrefix(t), capacity, append([]etcdlock.Option{etcdlock.WithTTL(testTTL)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// ownedManager is a Manager with the client it alone uses; Close closes
// both.
type ownedManager struct {
	*etcdlock.Manager
	cli *clientv3.Client
}

func (m ownedManager) Close() error {
	err := m.Manager.Close()
	m.cli.Close()
	return err
}

// addr is the address of a lock space for child processes: the endpoints
// and the prefix.
func addr(m *etcdlock.Manager) string {
	return strings.Join(server.Endpoints(), ",") + "|" + m.Prefix()
}

// openAddr joins the lock space at addr with a client of its own.
func openAddr(addr string) (lock.Manager, error) {
	m, err := openOwned(addr)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func openOwned(addr string) (ownedManager, error) {
	eps, prefix, ok := strings.Cut(addr, "|")
	if !ok {
		return ownedManager{}, fmt.Errorf("bad address %q", addr)
	}
	cli, err := etcdtest.NewClient(strings.Split(eps, ","))
	if err != nil {
		return ownedManager{}, err
	}
	m, err := etcdlock.New(cli, prefix, 0, etcdlock.WithTTL(testTTL))
	if err != nil {
		cli.Close()
		return ownedManager{}, err
	}
	return ownedManager{m, cli}, nil
}
