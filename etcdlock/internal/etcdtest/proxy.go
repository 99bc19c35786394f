package etcdtest

import (
	"bufio"
	"io"
	"net"
	"net/textproto"
	"sync"
)

// A Partitioner sits in front of every member's peer port and drops the
// peer traffic of partitioned members, in both directions. etcd's peer
// requests name their sender in an X-Server-From header (its member ID),
// so a proxy in front of member B can tell a connection from A from one
// from C; a partition of A then closes every connection from A and to A,
// and refuses new ones, while clients still reach A's client port.
type Partitioner struct {
	mu      sync.Mutex
	cut     map[string]bool     // partitioned member names
	ids     map[string]string   // member ID (hex) to name
	conns   map[*proxyConn]bool // open proxied connections
	proxies []net.Listener
}

type proxyConn struct {
	from, to string // member names; from may be "" if unknown
	a, b     net.Conn
}

// NewPartitioner returns a Partitioner with no proxy yet.
func NewPartitioner() *Partitioner {
	return &Partitioner{cut: map[string]bool{}, ids: map[string]string{}, conns: map[*proxyConn]bool{}}
}

// Advertise is an Options.PeerAdvertise: it starts a proxy to listen, the
// peer port of member name, and returns the proxy's address.
func (p *Partitioner) Advertise(name, listen string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	p.mu.Lock()
	p.proxies = append(p.proxies, l)
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c, name, listen)
		}
	}()
	return l.Addr().String()
}

// Learn records the member IDs of c, which the proxies need to know who
// sends a connection. Call it once the cluster is up.
func (p *Partitioner) Learn(c *Cluster) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range c.Members {
		if m.e != nil {
			p.ids[m.e.Server.MemberID().String()] = m.Name
		}
	}
}

// serve proxies one connection to member to at addr, unless the sender or
// to is partitioned.
func (p *Partitioner) serve(a net.Conn, to, addr string) {
	br := bufio.NewReader(a)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		a.Close()
		return
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		a.Close()
		return
	}
	p.mu.Lock()
	from := p.ids[hdr.Get("X-Server-From")]
	blocked := p.cut[to] || p.cut[from]
	p.mu.Unlock()
	if blocked {
		a.Close()
		return
	}
	b, err := net.Dial("tcp", addr)
	if err != nil {
		a.Close()
		return
	}
	pc := &proxyConn{from: from, to: to, a: a, b: b}
	p.mu.Lock()
	p.conns[pc] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
		a.Close()
		b.Close()
	}()
	// Replay the request head, then whatever the reader buffered.
	head := line + "\r\n"
	for k, vs := range hdr {
		for _, v := range vs {
			head += k + ": " + v + "\r\n"
		}
	}
	head += "\r\n"
	if _, err := io.WriteString(b, head); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, br); done <- struct{}{} }()
	go func() { io.Copy(a, b); done <- struct{}{} }()
	<-done
}

// Partition cuts member name off from the other members.
func (p *Partitioner) Partition(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut[name] = true
	for pc := range p.conns {
		if pc.from == name || pc.to == name {
			pc.a.Close()
			pc.b.Close()
		}
	}
}

// Heal ends every partition.
func (p *Partitioner) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.cut)
}

// Close stops the proxies.
func (p *Partitioner) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.proxies {
		l.Close()
	}
	for pc := range p.conns {
		pc.a.Close()
		pc.b.Close()
	}
}
