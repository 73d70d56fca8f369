// SPDX-License-Identifier: Apache-2.0

package health

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
)

// fakeBackend is a listener on a loopback address whose connections a
// handler answers; it can be stopped (connection refused) and started
// again on the same address.
type fakeBackend struct {
	t       testing.TB
	addr    string
	handler atomic.Pointer[func(*fakeConn)]
	conns   atomic.Int64

	mu sync.Mutex
	ln net.Listener
}

func newFakeBackend(t testing.TB, ip string, h func(*fakeConn)) *fakeBackend {
	t.Helper()
	b := &fakeBackend{t: t}
	b.set(h)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(b.stop)
	return b
}

func (b *fakeBackend) set(h func(*fakeConn)) { b.handler.Store(&h) }

func (b *fakeBackend) port() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ln.Addr().(*net.TCPAddr).Port
}

func (b *fakeBackend) serve(ln net.Listener) {
	b.mu.Lock()
	b.ln = ln
	b.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				(*b.handler.Load())(&fakeConn{Conn: c, r: bufio.NewReader(c)})
			}()
		}
	}()
}

// stop closes the listener: connections are refused.
func (b *fakeBackend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		b.ln.Close()
	}
}

// start listens again on the same address.
func (b *fakeBackend) start() {
	b.t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.serve(ln)
}

// fakeConn is one connection to a fake backend.
type fakeConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *fakeConn) send(lines ...string) {
	for _, l := range lines {
		io.WriteString(c.Conn, l+"\r\n")
	}
}

// read returns the next line, without its line end ("" at EOF).
func (c *fakeConn) read() string {
	l, _ := c.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n")
}

func (c *fakeConn) startTLS(cfg *tls.Config) {
	tc := tls.Server(c.Conn, cfg)
	if tc.Handshake() != nil {
		return
	}
	c.Conn, c.r = tc, bufio.NewReader(tc)
}

// Handlers: healthy backends of each protocol, which accept user/pw.

const (
	testUser = "health@example.org"
	testPass = "s3cret"
)

func imapBackend(greeting string, tlsCfg *tls.Config) func(*fakeConn) {
	return func(c *fakeConn) {
		c.send(greeting)
		for {
			l := c.read()
			tag, cmd, _ := strings.Cut(l, " ")
			switch {
			case l == "":
				return
			case cmd == "STARTTLS":
				c.send(tag + " OK Begin TLS negotiation now.")
				c.startTLS(tlsCfg)
			case strings.HasPrefix(cmd, "LOGIN "):
				if cmd == "LOGIN "+imapQuote(testUser)+" "+imapQuote(testPass) {
					c.send(tag + " OK [CAPABILITY IMAP4rev1] Logged in")
				} else {
					c.send(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
				}
			case cmd == "LOGOUT":
				c.send("* BYE Logging out", tag+" OK Logout completed.")
				return
			default:
				c.send(tag + " BAD Error in IMAP command")
			}
		}
	}
}

func pop3Backend(tlsCfg *tls.Config) func(*fakeConn) {
	return func(c *fakeConn) {
		c.send("+OK Dovecot ready.")
		user := ""
		for {
			l := c.read()
			switch {
			case l == "":
				return
			case l == "STLS":
				c.send("+OK Begin TLS negotiation now.")
				c.startTLS(tlsCfg)
			case strings.HasPrefix(l, "USER "):
				user = l[5:]
				c.send("+OK")
			case strings.HasPrefix(l, "PASS "):
				if user == testUser && l[5:] == testPass {
					c.send("+OK Logged in.")
				} else {
					c.send("-ERR [AUTH] Authentication failed.")
				}
			case l == "QUIT":
				c.send("+OK Logging out.")
				return
			default:
				c.send("-ERR Unknown command.")
			}
		}
	}
}

func lmtpBackend(tlsCfg *tls.Config) func(*fakeConn) {
	return func(c *fakeConn) {
		c.send("220 backend Dovecot ready.")
		for {
			l := c.read()
			switch {
			case l == "":
				return
			case strings.HasPrefix(l, "LHLO "):
				c.send("250-backend", "250-8BITMIME", "250-STARTTLS", "250 PIPELINING")
			case l == "STARTTLS":
				c.send("220 2.0.0 Begin TLS negotiation now.")
				c.startTLS(tlsCfg)
			case l == "MAIL FROM:<>":
				c.send("250 2.1.0 OK")
			case strings.HasPrefix(l, "RCPT TO:"):
				if l == "RCPT TO:<"+testUser+">" {
					c.send("250 2.1.5 OK")
				} else {
					c.send("550 5.1.1 <" + l[9:] + " User doesn't exist")
				}
			case l == "QUIT":
				c.send("221 2.0.0 Bye")
				return
			default:
				c.send("500 5.5.1 Unknown command")
			}
		}
	}
}

func sieveBackend(sasl string, tlsCfg *tls.Config) func(*fakeConn) {
	caps := func(c *fakeConn) {
		c.send(`"IMPLEMENTATION" "Dovecot Pigeonhole"`, `"SIEVE" "fileinto reject"`, `"SASL" "`+sasl+`"`,
			`"STARTTLS"`, `"VERSION" "1.0"`, `OK "Dovecot ready."`)
	}
	return func(c *fakeConn) {
		caps(c)
		for {
			l := c.read()
			switch {
			case l == "":
				return
			case l == "STARTTLS":
				c.send(`OK "Begin TLS negotiation now."`)
				c.startTLS(tlsCfg)
				caps(c)
			case strings.HasPrefix(l, `AUTHENTICATE "PLAIN" "`):
				want := `AUTHENTICATE "PLAIN" "` + b64("\x00"+testUser+"\x00"+testPass) + `"`
				if l == want {
					c.send(`OK "Logged in."`)
				} else {
					c.send(`NO "Authentication failed."`)
				}
			case l == "LOGOUT":
				c.send(`OK "Logout completed."`)
				return
			default:
				c.send(`NO "Unknown command."`)
			}
		}
	}
}

// silent accepts and says nothing.
func silent(c *fakeConn) { c.read() }

// fakeHosts is Hosts in memory: it records the changes it is asked for.
type fakeHosts struct {
	mu       sync.Mutex
	hosts    map[string]director.HostRecord
	downBy   map[string]string // "health" or "operator"
	calls    []string          // "down IP", "up IP"
	reasons  []string
	block    chan struct{} // when set, Down waits for it
	beforeUp func()        // when set, runs (locked) as Up begins
	onDown   func(ip string)
	err      error // Hosts fails with it
}

func newFakeHosts(hosts ...director.Host) *fakeHosts {
	f := &fakeHosts{hosts: map[string]director.HostRecord{}, downBy: map[string]string{}}
	for _, h := range hosts {
		if h.VHosts == 0 {
			h.VHosts = 100
		}
		f.hosts[h.IP] = director.HostRecord{Host: h}
	}
	return f
}

func (f *fakeHosts) Hosts(context.Context) ([]director.HostRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []director.HostRecord
	for _, h := range f.hosts {
		out = append(out, h)
	}
	return out, nil
}

func (f *fakeHosts) Down(ctx context.Context, ip, reason string) error {
	f.mu.Lock()
	f.calls = append(f.calls, "down "+ip)
	f.reasons = append(f.reasons, reason)
	if f.onDown != nil {
		f.onDown(ip)
	}
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[ip]
	if !h.Down {
		h.Down = true
		f.downBy[ip] = "health"
		f.hosts[ip] = h
	}
	return nil
}

func (f *fakeHosts) Up(_ context.Context, ip, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "up "+ip)
	f.reasons = append(f.reasons, reason)
	if f.beforeUp != nil {
		f.beforeUp()
	}
	h := f.hosts[ip]
	if !h.Down || f.downBy[ip] != "health" {
		return ErrNotOurs
	}
	h.Down = false
	f.hosts[ip] = h
	delete(f.downBy, ip)
	return nil
}

func (f *fakeHosts) DownByHealth(h director.HostRecord) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return h.Down && f.downBy[h.IP] == "health"
}

// operator sets ip's state as an operator would.
func (f *fakeHosts) operator(ip string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.operatorLocked(ip, down)
}

func (f *fakeHosts) operatorLocked(ip string, down bool) {
	h := f.hosts[ip]
	h.Down = down
	f.hosts[ip] = h
	if down {
		f.downBy[ip] = "operator"
	} else {
		delete(f.downBy, ip)
	}
}

func (f *fakeHosts) isDown(ip string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hosts[ip].Down
}

func (f *fakeHosts) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// fakeElector hands leadership out when the test says so.
type fakeElector struct {
	grant chan context.Context // the test sends a context: lead until it ends
}

func (e *fakeElector) Lead(ctx context.Context, name string, fn func(context.Context)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case lctx := <-e.grant:
			fctx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(lctx, cancel)
			fn(fctx)
			stop()
			cancel()
		}
	}
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
