// Package faultproxy is a TCP proxy on 127.0.0.1 for tests of network
// faults between an attester and a verifier: it forwards connections to a
// target and, on demand, cuts every open connection, refuses new ones,
// or holds back the target's answers (a slow or hung replica). It is
// bounded: at most MaxConns connections at once, and it ends every
// connection when closed.
package faultproxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// MaxConns bounds the connections a proxy forwards at once.
const MaxConns = 256

// Proxy is a running proxy.
type Proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool
	delay time.Duration
	wg    sync.WaitGroup
	cuts  int
}

// Cuts counts the connections cut or refused so far.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Start starts a proxy to target (HOST:PORT); it is closed when the test
// ends.
func Start(tb testing.TB, target string) *Proxy {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Cut closes every open connection, at once, both ways.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		p.cuts++
	}
	clear(p.conns)
}

// SetDown makes the proxy cut every open connection and close new ones
// as they arrive (true), or forward again (false).
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.Cut()
	}
}

// SetDelay holds every chunk of the target's answers back by d (0: none).
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Close stops the proxy and ends every connection.
func (p *Proxy) Close() {
	p.l.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down || len(p.conns) >= MaxConns {
			p.cuts++
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	defer p.wg.Done()
	t, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	if _, ok := p.conns[c]; !ok { // cut meanwhile
		p.mu.Unlock()
		t.Close()
		return
	}
	p.conns[t] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(t, c); done <- struct{}{} }()
	go func() { p.answers(c, t); done <- struct{}{} }()
	<-done
	p.drop(c)
	p.drop(t)
	<-done
}

// answers copies the target's answers to the client, delayed as set.
func (p *Proxy) answers(c, t net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := t.Read(buf)
		if n > 0 {
			p.mu.Lock()
			d := p.delay
			p.mu.Unlock()
			if d > 0 {
				time.Sleep(d)
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}
