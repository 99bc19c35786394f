// Package etcdtest starts etcd servers inside the calling process, on free
// loopback ports, for etcdlock's tests, benchmarks and demo. Nothing outside
// the process is needed. etcdtest.go starts servers and clusters and makes
// clients; proxy.go is the Partitioner, proxies in front of the members'
// peer ports that a test cuts to partition a member; tcpproxy.go is a
// proxy in front of a client's endpoint that holds back or cuts its bytes.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Member is one etcd server of a Cluster.
type Member struct {
	Name     string
	Dir      string
	Client   string // client URL, http://127.0.0.1:port
	Peer     string // peer URL the member listens on
	cfg      *embed.Config
	e        *embed.Etcd
	stopped  bool
	initial  string
	adverted string
}

// Cluster is a set of etcd members started in this process.
type Cluster struct {
	Members []*Member
}

// Options tune Start.
type Options struct {
	// Fsync keeps etcd's fsyncs; by default they are off, which is
	// unsafe for data but fine for tests, and much faster.
	Fsync bool
	// TickMs and ElectionMs are the raft heartbeat and election timeout;
	// the defaults, 50 and 500, allow a lease TTL of one second.
	TickMs, ElectionMs uint
	// PeerAdvertise, if set, maps a member's peer listen address to the
	// address the other members reach it at (a proxy, say).
	PeerAdvertise func(name, listen string) string
}

// freePort returns a loopback address with a port that was free a moment
// ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start starts an n-member cluster with its data under dir, and waits until
// it serves requests.
func Start(dir string, n int, o Options) (*Cluster, error) {
	if o.TickMs == 0 {
		o.TickMs, o.ElectionMs = 50, 500
	}
	c := &Cluster{}
	var initial []string
	for i := range n {
		client, err := freePort()
		if err != nil {
			return nil, err
		}
		peer, err := freePort()
		if err != nil {
			return nil, err
		}
		m := &Member{
			Name:   fmt.Sprintf("m%d", i),
			Dir:    filepath.Join(dir, fmt.Sprintf("m%d", i)),
			Client: "http://" + client,
			Peer:   "http://" + peer,
		}
		m.adverted = m.Peer
		if o.PeerAdvertise != nil {
			m.adverted = "http://" + o.PeerAdvertise(m.Name, peer)
		}
		initial = append(initial, m.Name+"="+m.adverted)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.initial = strings.Join(initial, ",")
		m.cfg = config(m, o)
	}
	errc := make(chan error, n)
	for _, m := range c.Members {
		go func() { errc <- m.start() }()
	}
	var errs []error
	for range n {
		errs = append(errs, <-errc)
	}
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func config(m *Member, o Options) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.Dir
	cfg.UnsafeNoFsync = !o.Fsync
	cfg.TickMs, cfg.ElectionMs = o.TickMs, o.ElectionMs
	cu, _ := url.Parse(m.Client)
	pu, _ := url.Parse(m.Peer)
	au, _ := url.Parse(m.adverted)
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*au}
	cfg.InitialCluster = m.initial
	cfg.InitialClusterToken = "lockdir-test"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"
	return cfg
}

// start starts m and waits until it is ready.
func (m *Member) start() error {
	e, err := embed.StartEtcd(m.cfg)
	if err != nil {
		return fmt.Errorf("start etcd %s: %w", m.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd %s: %w", m.Name, err)
	case <-time.After(60 * time.Second):
		e.Close()
		return fmt.Errorf("etcd %s not ready within a minute", m.Name)
	}
	m.e = e
	m.stopped = false
	return nil
}

// Stop stops m; Restart starts it again on the same data and ports.
func (m *Member) Stop() {
	if m.e != nil && !m.stopped {
		m.e.Close()
		m.stopped = true
	}
}

// Restart starts a stopped member again, rejoining its cluster.
func (m *Member) Restart() error {
	cfg := *m.cfg
	cfg.ClusterState = embed.ClusterStateFlagExisting
	m.cfg = &cfg
	return m.start()
}

// IsLeader reports whether m is running and the raft leader.
func (m *Member) IsLeader() bool {
	return m.e != nil && !m.stopped && m.e.Server.Leader() == m.e.Server.MemberID()
}

// Endpoints returns the client URLs of the members.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Client)
	}
	return eps
}

// Client returns a client of the cluster with logging off.
func (c *Cluster) Client() (*clientv3.Client, error) {
	return NewClient(c.Endpoints())
}

// NewClient returns a client of the given endpoints with logging off.
func NewClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// Close stops every member.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.Stop()
	}
}
