// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/gateway"
)

var discard = slog.New(slog.DiscardHandler)

// lookupFunc is a Lookuper made of a function.
type lookupFunc func(context.Context, *auth.Request) (auth.Result, error)

func (f lookupFunc) Lookup(ctx context.Context, req *auth.Request) (auth.Result, error) {
	return f(ctx, req)
}

// everyone exists and is routed by host field ("host" per user: users
// starting with "b" go to backend B).
func routeByName(hostA, hostB string, portA, portB int) lookupFunc {
	return func(_ context.Context, req *auth.Request) (auth.Result, error) {
		if strings.HasPrefix(req.User, "unknown") {
			return auth.Result{Status: auth.StatusUserUnknown}, nil
		}
		if strings.HasPrefix(req.User, "down") {
			return auth.Result{}, auth.Temporary("db", fmt.Errorf("down"))
		}
		host, port := hostA, portA
		if strings.HasPrefix(req.User, "b") {
			host, port = hostB, portB
		}
		return auth.Result{Status: auth.StatusOK, Fields: auth.Fields{"host": host, "port": fmt.Sprint(port)}}, nil
	}
}

// fakeLMTP is a scripted LMTP backend: it accepts every RCPT and, after
// DATA, answers 250 per recipient, unless dieInData is set: then it reads
// a little of the message and hangs up.
type fakeLMTP struct {
	ln        net.Listener
	dieInData bool
	// received, when set, hears of every message; hold, when set, keeps
	// the replies to a message back until it is closed.
	received chan struct{}
	hold     chan struct{}
	mu       sync.Mutex
	got      []string // commands, and "MSG:<body>" per message
}

func newFakeLMTP(t *testing.T, ip string) *fakeLMTP {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("cannot listen on %s: %v", ip, err)
	}
	f := &fakeLMTP{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeLMTP) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *fakeLMTP) record(s string) { f.mu.Lock(); f.got = append(f.got, s); f.mu.Unlock() }

func (f *fakeLMTP) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func (f *fakeLMTP) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	fmt.Fprint(c, "220 fake LMTP\r\n")
	var rcpts int
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.record(line)
		switch verb, _, _ := strings.Cut(strings.ToUpper(line), " "); verb {
		case "LHLO":
			fmt.Fprint(c, "250-fake\r\n250-8BITMIME\r\n250-SIZE\r\n250 PIPELINING\r\n")
		case "MAIL":
			rcpts = 0
			if strings.Contains(line, "<refused@") {
				fmt.Fprint(c, "550 5.7.1 Sender refused here\r\n")
				continue
			}
			fmt.Fprint(c, "250 2.1.0 OK\r\n")
		case "RCPT":
			rcpts++
			fmt.Fprint(c, "250 2.1.5 OK\r\n")
		case "DATA":
			fmt.Fprint(c, "354 go\r\n")
			if f.dieInData {
				r.ReadString('\n')
				return
			}
			var body strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			f.record("MSG:" + body.String())
			if f.received != nil {
				f.received <- struct{}{}
			}
			if f.hold != nil {
				<-f.hold
			}
			for i := 0; i < rcpts; i++ {
				fmt.Fprintf(c, "250 2.0.0 <r%d> Saved\r\n", i)
			}
		case "QUIT":
			fmt.Fprint(c, "221 bye\r\n")
			return
		default:
			fmt.Fprint(c, "250 OK\r\n")
		}
	}
}

type tenv struct {
	addr   string
	a, b   *fakeLMTP
	gs     *gateway.Server
	cancel context.CancelFunc
}

func startLMTP(t *testing.T, mod func(*Server), trusted ...netip.Prefix) *tenv {
	t.Helper()
	a, b := newFakeLMTP(t, "127.0.0.1"), newFakeLMTP(t, "127.0.0.2")
	hosts, _ := director.ParseHosts([]string{"127.0.0.1"})
	dir, err := director.New(director.Config{Hosts: hosts, Store: memory.New(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	p := &gateway.Pipeline{Director: dir, Ports: map[string]int{"lmtp": a.port()}, Timeout: 5 * time.Second, ConnectAttempts: 1, Log: discard}
	srv := &Server{Pipeline: p, Lookup: routeByName("127.0.0.1", "127.0.0.2", a.port(), b.port()),
		Hostname: "gw.test", RecipientDelimiter: "+", MaxRecipients: 10, MaxBadCommands: 5, Timeout: 5 * time.Second}
	if mod != nil {
		mod(srv)
	}
	l := &gateway.Listener{Protocol: "lmtp", Address: "127.0.0.1:0", Handler: srv, Trusted: trusted}
	gs := &gateway.Server{Listeners: []*gateway.Listener{l}, Limits: gateway.Limits{LoginTimeout: time.Minute, MaxLine: 8192}, Log: discard}
	if err := gs.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gs.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); gs.Close(); <-done })
	return &tenv{addr: l.Addr().String(), a: a, b: b, gs: gs, cancel: cancel}
}

type tclient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (e *tenv) dial(t *testing.T) *tclient {
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	tc := &tclient{t: t, c: c, r: bufio.NewReader(c)}
	tc.expect("220 gw.test maildirector LMTP ready")
	t.Cleanup(func() { c.Close() })
	return tc
}

// expect reads one reply per want; a want ending in "..." is a prefix.
func (c *tclient) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		var line string
		for {
			l, err := c.r.ReadString('\n')
			if err != nil {
				c.t.Fatalf("read: %v; want %q", err, w)
			}
			line = strings.TrimRight(l, "\r\n")
			if len(line) < 4 || line[3] != '-' {
				break
			}
		}
		if p, ok := strings.CutSuffix(w, "..."); ok {
			if !strings.HasPrefix(line, p) {
				c.t.Fatalf("got %q, want %q", line, w)
			}
		} else if line != w {
			c.t.Fatalf("got %q, want %q", line, w)
		}
	}
}

func (c *tclient) do(line string, want ...string) {
	c.t.Helper()
	io.WriteString(c.c, line+"\r\n")
	c.expect(want...)
}

func TestStateMachine(t *testing.T) {
	e := startLMTP(t, func(s *Server) { s.MaxBadCommands = 50 })
	c := e.dial(t)
	c.do("MAIL FROM:<a@b>", "503 5.5.1 LHLO first")
	// Dovecot's lmtp's words (lib-smtp), checked against it by
	// integration/parity_lmtp_test.go.
	c.do("EHLO x", "500 5.5.1 Unknown command")
	c.do("LHLO", "501 Missing hostname")
	c.do("LHLO mta", "250 SIZE")
	c.do("RCPT TO:<a@b>", "503 5.5.0 MAIL needed first")
	c.do("DATA", "503 5.5.0 MAIL needed first")
	c.do("MAIL FROM:<a@b> BODY=BINARYMIME", "555 5.5.4 Unsupported mail BODY type")
	c.do("MAIL FROM:<a@b> RET=HDRS", "555 5.5.4 Unsupported parameters")
	c.do("MAIL FROM:a@b", "501 5.5.4 Invalid FROM: Missing '<' at beginning of path")
	c.do("MAIL FROM:<a@b", "501 5.5.4 Invalid FROM: Missing '>' at end of path")
	c.do("MAIL <a@b>", "501 5.5.4 Invalid parameters")
	c.do("MAIL FROM:<>", "250 2.1.0 OK")
	c.do("MAIL FROM:<x@y>", "503 5.5.0 MAIL already given")
	c.do("DATA", "503 5.5.0 No valid recipients")
	c.do("RCPT TO:<>", "501 5.5.4 Invalid TO: Null path not allowed")
	c.do("RCPT <a@b>", "501 5.5.4 Invalid parameters")
	c.do("RCPT TO:<a@b> NOTIFY=NEVER", "555 5.5.4 Unsupported parameters")
	c.do("VRFY alice", "252 2.3.3 Try RCPT instead")
	c.do(`VRFY "alice@example.com"`, "252 2.3.3 Try RCPT instead")
	c.do("VRFY alice@example.com", "501 5.5.4 Invalid string parameter: Invalid character in string")
	c.do("VRFY", "501 5.5.4 Invalid parameters")
	c.do("NOOP", "250 2.0.0 OK")
	c.do("RSET x", "501 5.5.4 Invalid parameters")
	c.do("QUIT x", "501 5.5.4 Invalid parameters")
	c.do("RSET", "250 2.0.0 OK")
	c.do("XCLIENT ADDR=192.0.2.1", "550 5.7.0 You are not allowed to use XCLIENT")
	c.do("STARTTLS", "454 4.7.0 TLS not available")
	c.do("QUIT", "221 2.0.0 Bye")
}

func TestTooManyErrors(t *testing.T) {
	e := startLMTP(t, nil)
	c := e.dial(t)
	// One more invalid command than allowed is answered 421, as by
	// Dovecot's lmtp (lib-smtp's max_bad_commands).
	for i := 0; i < 5; i++ {
		c.do("BOGUS", "500 5.5.1 Unknown command")
	}
	c.do("BOGUS", "421 4.7.0 gw.test Too many invalid commands.")
	if l, err := c.r.ReadString('\n'); err == nil {
		t.Fatalf("after 421: %q", l)
	}
}

// Recipients on two backends, interleaved; backend B dies during DATA:
// exactly B's recipients get 451, A's get A's 250, in RCPT order.
func TestBackendLostDuringData(t *testing.T) {
	e := startLMTP(t, nil)
	e.b.dieInData = true
	c := e.dial(t)
	c.do("LHLO mta", "250 SIZE")
	c.do("MAIL FROM:<s@x> SIZE=100", "250 2.1.0 OK")
	for _, r := range []string{"a1@x", "b1@x", "unknown@x", "a2+tag@x", "b2@x", "down@x"} {
		want := "250 2.1.5 OK"
		switch {
		case strings.HasPrefix(r, "unknown"):
			want = "550 5.1.1 <unknown@x> User doesn't exist: unknown@x"
		case strings.HasPrefix(r, "down"):
			want = "451 4.3.0 <down@x> Temporary internal error"
		}
		c.do("RCPT TO:<"+r+">", want)
	}
	c.do("DATA", "354 OK")
	io.WriteString(c.c, "Subject: t\r\n\r\nline\r\n..dotted\r\n.\r\n")
	c.expect("250 2.0.0 <r0> Saved", "451 4.4.0 <b1@x> Remote server not answering",
		"250 2.0.0 <r1> Saved", "451 4.4.0 <b2@x> Remote server not answering")
	got := strings.Join(e.a.commands(), "|")
	if !strings.Contains(got, "RCPT TO:<a2+tag@x>") || !strings.Contains(got, "MSG:Subject: t\r\n\r\nline\r\n..dotted\r\n") ||
		!strings.Contains(got, "MAIL FROM:<s@x> SIZE=100") {
		t.Fatalf("backend A got %q", got)
	}
	// The session goes on.
	c.do("NOOP", "250 2.0.0 OK")
}

func TestLimits(t *testing.T) {
	e := startLMTP(t, func(s *Server) { s.MaxRecipients = 2; s.MaxMessageSize = 20 })
	c := e.dial(t)
	c.do("LHLO mta", "250 SIZE 20")
	c.do("MAIL FROM:<s@x> SIZE=100", "552 5.3.4 Message too big")
	c.do("MAIL FROM:<s@x>", "250 2.1.0 OK")
	c.do("RCPT TO:<a1@x>", "250 2.1.5 OK")
	c.do("RCPT TO:<a2@x>", "250 2.1.5 OK")
	c.do("RCPT TO:<a3@x>", "452 4.5.3 Too many recipients")
	c.do("DATA", "354...")
	io.WriteString(c.c, strings.Repeat("0123456789\r\n", 5)+".\r\n")
	c.expect("552 5.3.4 <a1@x> Message too big", "552 5.3.4 <a2@x> Message too big")
	c.do("NOOP", "250 2.0.0 OK")
	for _, cmd := range e.a.commands() {
		if strings.HasPrefix(cmd, "MSG:") {
			t.Fatal("a truncated message reached the backend")
		}
	}
}

// A trusted front end's XCLIENT sets the proxy TTL; when it has run out,
// a recipient is refused as a loop, before any lookup.
func TestXCLIENTFromTrusted(t *testing.T) {
	var lookups atomic.Int32
	e := startLMTP(t, func(s *Server) {
		inner := s.Lookup
		s.Lookup = lookupFunc(func(ctx context.Context, req *auth.Request) (auth.Result, error) {
			lookups.Add(1)
			return inner.Lookup(ctx, req)
		})
	}, netip.MustParsePrefix("127.0.0.0/8"))
	c := e.dial(t)
	c.do("LHLO mta", "250 XCLIENT ADDR PORT SESSION TTL")
	c.do("XCLIENT ADDR=192.0.2.7 PORT=2525 SESSION=abc TTL=1", "220 gw.test maildirector LMTP ready")
	c.do("MAIL FROM:<s@x>", "503 5.5.1 LHLO first")
	c.do("LHLO mta", "250 XCLIENT ADDR PORT SESSION TTL")
	c.do("MAIL FROM:<s@x>", "250 2.1.0 OK")
	c.do("RCPT TO:<a1@x>", "554 5.4.6 <a1@x> Proxying loops - TTL reached zero")
	if n := lookups.Load(); n != 0 {
		t.Fatalf("%d lookups for a looping recipient", n)
	}
}

// With PIPELINING, MAIL FROM goes out with the first RCPT TO in one
// write; a sender the backend refuses gets the backend's verdict for that
// recipient, the backend's later recipients the backend's failure; the
// next transaction starts afresh.
func TestPipelinedMailFrom(t *testing.T) {
	e := startLMTP(t, nil)
	c := e.dial(t)
	c.do("LHLO mta", "250 SIZE")
	c.do("MAIL FROM:<refused@example.com>", "250 2.1.0 OK")
	c.do("RCPT TO:<a1@x>", "550 5.7.1 Sender refused here")
	c.do("RCPT TO:<a2@x>", "451 4.4.0 <a2@x> Remote server not answering")
	c.do("RCPT TO:<b1@x>", "550 5.7.1 Sender refused here") // b's own verdict
	c.do("RSET", "250 2.0.0 OK")
	c.do("MAIL FROM:<s@example.com>", "250 2.1.0 OK")
	c.do("RCPT TO:<a1@x>", "250 2.1.5 OK")
	c.do("RCPT TO:<a2@x>", "250 2.1.5 OK")
	c.do("DATA", "354 OK")
	c.do("Subject: t\r\n\r\nbody\r\n.", "250 2.0.0 <r0> Saved", "250 2.0.0 <r1> Saved")
	var mails []string
	for _, l := range e.a.commands() {
		if strings.HasPrefix(l, "MAIL") || strings.HasPrefix(l, "RCPT") {
			mails = append(mails, l)
		}
	}
	want := []string{"MAIL FROM:<refused@example.com>", "RCPT TO:<a1@x>", "MAIL FROM:<s@example.com>", "RCPT TO:<a1@x>", "RCPT TO:<a2@x>"}
	if strings.Join(mails, "|") != strings.Join(want, "|") {
		t.Errorf("backend a got %q, want %q", mails, want)
	}
}
