package etcdtest

import (
	"net"
	"sync"
	"testing"
	"time"
)

// A TCPProxy stands between a client and one etcd endpoint, for tests of
// what a client does when the network fails it: Hold keeps every byte back,
// in both directions, as if one side had been stopped (SIGSTOP) or frozen,
// until Release passes them on in order; Cut drops every connection and
// refuses new ones, as a firewall or a dead member would, until Heal;
// Delay makes every byte late, as a distant or slow cluster is.
type TCPProxy struct {
	addr string

	mu    sync.Mutex
	held  chan struct{} // closed by Release; nil while bytes pass
	delay time.Duration // each way
	down  bool
	conns map[net.Conn]bool
}

// StartTCPProxy listens on a free loopback port and forwards each
// connection to target, a host:port. It is closed, and every byte it holds
// let go, when t ends.
func StartTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &TCPProxy{addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		p.Release()
		p.Cut()
	})
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				a.Close()
				continue
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			p.mu.Lock()
			p.conns[a], p.conns[b] = true, true
			p.mu.Unlock()
			go p.pass(b, a)
			go p.pass(a, b)
		}
	}()
	return p
}

// Addr is the proxy's host:port, for the client.
func (p *TCPProxy) Addr() string { return p.addr }

// Hold keeps back every byte from now on, until Release.
func (p *TCPProxy) Hold() {
	p.mu.Lock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
	p.mu.Unlock()
}

// Release passes on the bytes held back, in order, and every byte after.
func (p *TCPProxy) Release() {
	p.mu.Lock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
	p.mu.Unlock()
}

// Delay passes every chunk of bytes on d after it came, in each direction,
// so that a request is answered a round trip of 2 × d later at least.
func (p *TCPProxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Cut closes every connection and refuses new ones, until Heal.
func (p *TCPProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Heal accepts connections again.
func (p *TCPProxy) Heal() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// pass copies src to dst, waiting before each write while bytes are held.
func (p *TCPProxy) pass(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		held, delay := p.held, p.delay
		p.mu.Unlock()
		if held != nil {
			<-held
		}
		time.Sleep(delay)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
