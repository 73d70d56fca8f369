// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/gateway"
)

var discard = slog.New(slog.DiscardHandler)

const testPassword = "s3cret"

// fakeDoveadm is a scripted doveadm server (Dovecot 2.3's side of the
// protocol). Its answers name it, so that a test sees which backend ran a
// command:
//
//	save      reads the input dot stream, answers +
//	nouser    a log line and -NOUSER, as Dovecot for an unknown user
//	die       half a field, then hangs up
//	dieclean  whole fields, then hangs up
//	kick      the masks, as fields
//	anything  <name>\t<user>\t<args…>\t, then +
type fakeDoveadm struct {
	name     string
	ln       net.Listener
	password string
	minor    int // the minor it answers with; 0 sends no VERSION line (2.2)
	// tls, when set, is offered with STARTTLS, or spoken from the first
	// byte when implicit.
	tls      *tls.Config
	implicit bool
	mu       sync.Mutex
	got      []string // command lines, and "INPUT:<stream>" for input
}

func newFake(t *testing.T, name, ip string) *fakeDoveadm {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("cannot listen on %s: %v", ip, err)
	}
	f := &fakeDoveadm{name: name, ln: ln, password: testPassword, minor: 2}
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

// configure changes the fake's behaviour for the connections it accepts
// from now on.
func (f *fakeDoveadm) configure(fn func(*fakeDoveadm)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeDoveadm) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *fakeDoveadm) record(s string) { f.mu.Lock(); f.got = append(f.got, s); f.mu.Unlock() }

func (f *fakeDoveadm) lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func (f *fakeDoveadm) serve(c net.Conn) {
	defer func() { c.Close() }()
	f.mu.Lock()
	password, minor, tlsConf, implicit := f.password, f.minor, f.tls, f.implicit
	f.mu.Unlock()
	if implicit {
		c = tls.Server(c, tlsConf)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	clientMinor, ok := parseVersion(strings.TrimSuffix(line, "\n"), "doveadm-server")
	if !ok {
		return
	}
	if minor > 0 && clientMinor > 0 {
		fmt.Fprintf(c, "VERSION\tdoveadm-client\t1\t%d\n", minor)
	}
	io.WriteString(c, "-\n")
	line, _ = r.ReadString('\n')
	if line == "STARTTLS\n" && tlsConf != nil && !implicit {
		pre, _ := r.Peek(r.Buffered())
		c = tls.Server(&prefixConn{Conn: c, pre: bytes.Clone(pre)}, tlsConf)
		r = bufio.NewReader(c)
		line, _ = r.ReadString('\n')
		f.record("(TLS)")
	}
	if strings.TrimSuffix(line, "\n") != "PLAIN\t"+base64.StdEncoding.EncodeToString([]byte("\x00doveadm\x00"+password)) {
		io.WriteString(c, "-\n")
		return
	}
	io.WriteString(c, "+\n")
	mux := minor > 0 && clientMinor > 0
	send := func(ch byte, s string) {
		if !mux {
			if ch == 0 {
				io.WriteString(c, s)
			}
			return
		}
		var b bytes.Buffer
		b.WriteByte(ch)
		binary.Write(&b, binary.BigEndian, uint32(len(s)))
		b.WriteString(s)
		c.Write(b.Bytes())
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f.record(strings.TrimSuffix(line, "\n"))
		fields := splitLine(strings.TrimSuffix(line, "\n"))
		user, cmd := fields[1], fields[2]
		switch cmd {
		case "save":
			var in bytes.Buffer
			if err := copyDotStream(&in, r); err != nil {
				return
			}
			f.record("INPUT:" + in.String())
			send(0, "\n+\n")
		case "nouser":
			send('L', "\x04doveadm(127.0.0.1,"+user+"): User doesn't exist\n")
			send(0, "\n-NOUSER\n")
		case "die":
			send(0, "half a fi")
			return
		case "dieclean":
			send(0, "whole\t")
			return
		case "kick":
			var out strings.Builder
			for _, m := range fields[3:] {
				out.WriteString(escape(m) + "\t")
			}
			send(0, out.String())
			send(0, "\n+\n")
		default:
			out := escape(f.name) + "\t" + escape(user) + "\t"
			for _, a := range fields[3:] {
				out += escape(a) + "\t"
			}
			send('L', "\x02working\n")
			send(0, out)
			send(0, "\n+\n")
		}
	}
}

type lookupFunc func(context.Context, *auth.Request) (auth.Result, error)

func (f lookupFunc) Lookup(ctx context.Context, req *auth.Request) (auth.Result, error) {
	return f(ctx, req)
}

type tenv struct {
	addr     string
	a, b     *fakeDoveadm
	gs       *gateway.Server
	listener *gateway.Listener
}

// deadPort is a port nobody listens on.
func deadPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// startGateway: users starting with "b" are pinned to backend B
// (127.0.0.2), "dead…" to a port nobody listens on, "a…" to A, and
// others placed by the director, whose only backend is A (127.0.0.1).
// Names are lower-cased by the "passdb", as auth.username_format %Lu does.
func startGateway(t *testing.T, mod func(*Server, *gateway.Listener)) *tenv {
	t.Helper()
	a, b := newFake(t, "A", "127.0.0.1"), newFake(t, "B", "127.0.0.2")
	dead := deadPort(t)
	hosts, _ := director.ParseHosts([]string{"127.0.0.1"})
	dir, err := director.New(director.Config{Hosts: hosts, Store: memory.New(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	p := &gateway.Pipeline{Director: dir, Ports: map[string]int{"doveadm": a.port()}, Timeout: 5 * time.Second, ConnectAttempts: 1, Log: discard}
	lookup := lookupFunc(func(_ context.Context, req *auth.Request) (auth.Result, error) {
		user := strings.ToLower(req.User)
		f := auth.Fields{}
		switch {
		case strings.HasPrefix(user, "unknown"):
			return auth.Result{Status: auth.StatusUserUnknown}, nil
		case strings.HasPrefix(user, "down"):
			return auth.Result{}, auth.Temporary("db", fmt.Errorf("down"))
		case strings.HasPrefix(user, "b"):
			f["host"], f["port"] = "127.0.0.2", fmt.Sprint(b.port())
		case strings.HasPrefix(user, "dead"):
			f["host"], f["port"] = "127.0.0.1", fmt.Sprint(dead)
		case strings.HasPrefix(user, "a"):
			f["host"] = "127.0.0.1"
		}
		if strings.HasPrefix(user, "disabled") {
			f["nologin"] = ""
		}
		return auth.Result{Status: auth.StatusOK, User: user, Fields: f}, nil
	})
	srv := &Server{Pipeline: p, Lookup: lookup, Password: testPassword}
	l := &gateway.Listener{Protocol: "doveadm", Address: "127.0.0.1:0", Handler: srv}
	if mod != nil {
		mod(srv, l)
	}
	gs := &gateway.Server{Listeners: []*gateway.Listener{l}, Limits: gateway.Limits{LoginTimeout: time.Minute, MaxLine: 8192}, Log: discard}
	if err := gs.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gs.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); gs.Close(); <-done })
	return &tenv{addr: l.Addr().String(), a: a, b: b, gs: gs, listener: l}
}

// tclient is a doveadm client, as Dovecot's server-connection.c.
type tclient struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	mux bool
	d   *demux
}

// dialNet connects and runs the handshake with the given version minor
// and password; it returns the client and the server's handshake lines.
func dialNet(t *testing.T, network, addr string, minor int, password string) (*tclient, []string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	tc := &tclient{t: t, c: c, r: bufio.NewReader(c)}
	fmt.Fprintf(c, "VERSION\tdoveadm-server\t1\t%d\n", minor)
	var got []string
	for {
		line, err := tc.r.ReadString('\n')
		if err != nil {
			return tc, append(got, "EOF")
		}
		line = strings.TrimSuffix(line, "\n")
		got = append(got, line)
		switch line {
		case "-":
			if strings.HasSuffix(strings.Join(got[:len(got)-1], ","), "PLAIN") {
				continue
			}
			got = append(got, "PLAIN")
			fmt.Fprintf(c, "PLAIN\t%s\n", base64.StdEncoding.EncodeToString([]byte("\x00doveadm\x00"+password)))
			continue
		case "+":
			tc.mux = minor > 0
			tc.d = &demux{r: tc.r, mux: tc.mux}
			return tc, got
		}
	}
}

func (e *tenv) dial(t *testing.T) *tclient {
	t.Helper()
	c, hs := dialNet(t, "tcp", e.addr, 2, testPassword)
	if strings.Join(hs, ",") != "VERSION\tdoveadm-client\t1\t2,-,PLAIN,+" {
		t.Fatalf("handshake: %q", hs)
	}
	return c
}

// cmd sends a command line (fields given escaped already) and returns the
// printed fields, the log lines and the result line; result "EOF" means
// the connection ended.
func (c *tclient) cmd(line string) (out, logs, result string) {
	c.t.Helper()
	io.WriteString(c.c, line+"\n")
	return c.reply()
}

func (c *tclient) reply() (out, logs, result string) {
	var main, log bytes.Buffer
	buf := make([]byte, 4096)
	for {
		if i := bytes.IndexByte(main.Bytes(), '\n'); i >= 0 {
			if j := bytes.IndexByte(main.Bytes()[i+1:], '\n'); j >= 0 {
				return string(main.Bytes()[:i]), log.String(), string(main.Bytes()[i+1 : i+1+j])
			}
		}
		ch, n, err := c.d.next(buf)
		if ch == 0 {
			main.Write(buf[:n])
		} else if ch == 'L' {
			log.Write(buf[:n])
		}
		if err != nil {
			return main.String(), log.String(), "EOF"
		}
	}
}

func (c *tclient) expect(line, wantOut, wantLog, wantResult string) {
	c.t.Helper()
	out, logs, result := c.cmd(line)
	if out != wantOut || result != wantResult || (wantLog != "*" && logs != wantLog) {
		c.t.Fatalf("%q:\n got %q %q %q\nwant %q %q %q", line, out, logs, result, wantOut, wantLog, wantResult)
	}
}

// TestRouting: each command goes to its user's backend — pinned by the
// passdb, or placed by the director — with the canonical user name in
// the user field (the arguments as given), and the backend's fields, log
// lines and result come back unchanged. One connection carries commands
// for users on different backends.
func TestRouting(t *testing.T) {
	e := startGateway(t, nil)
	c := e.dial(t)
	c.expect("\talice\tmailbox status\t-u\talice\t--\tmessages\tINBOX", "A\talice\t-u\talice\t--\tmessages\tINBOX\t", "\x02working\n", "+")
	c.expect("v\tBob@X\tfetch\t-u\tBob@X\t--\ttext\tmailbox\tIN\x01tBOX", "B\tbob@x\t-u\tBob@X\t--\ttext\tmailbox\tIN\x01tBOX\t", "\x02working\n", "+")
	c.expect("\tcarol\tquota get\t-u\tcarol\t--", "A\tcarol\t-u\tcarol\t--\t", "*", "+")
	// nologin does not stop an administrator.
	c.expect("\tdisabled\tquota get", "A\tdisabled\t", "*", "+")
	// The backend's own failures come back as they are.
	c.expect("\talice\tnouser", "", "\x04doveadm(127.0.0.1,alice): User doesn't exist\n", "-NOUSER")
	if got := e.b.lines(); len(got) != 1 || got[0] != "v\tbob@x\tfetch\t-u\tBob@X\t--\ttext\tmailbox\tIN\x01tBOX" {
		t.Fatalf("B got %q", got)
	}
	if got := e.a.lines(); len(got) != 4 {
		t.Fatalf("A got %q", got)
	}
}

// TestInput: save's input (a dot stream) reaches the backend exactly, and
// the next command on the connection, sent right behind it, is read as a
// command, for its own backend.
func TestInput(t *testing.T) {
	e := startGateway(t, nil)
	c := e.dial(t)
	msg := "Subject: two\r\n\r\n..dotted\r\n" + strings.Repeat("long line ", 2000) + "\r\n\r\n.\r\n"
	io.WriteString(c.c, "\talice\tsave\t-u\talice\t--\n"+msg+"\tbob\tquota get\n")
	if out, _, res := c.reply(); out != "" || res != "+" {
		t.Fatalf("save: %q %q", out, res)
	}
	if out, _, res := c.reply(); out != "B\tbob\t" || res != "+" {
		t.Fatalf("after save: %q %q", out, res)
	}
	got := e.a.lines()
	if len(got) != 2 || got[1] != "INPUT:"+msg {
		t.Fatalf("A got %q", got)
	}
	// A save refused before any backend saw it: its input is dropped, not
	// read as commands.
	for _, user := range []string{"unknown", "dead"} {
		io.WriteString(c.c, "\t"+user+"\tsave\n"+msg+"\tbob\tquota get\n")
		if _, _, res := c.reply(); !strings.HasPrefix(res, "-") {
			t.Fatalf("save for %s: %q", user, res)
		}
		if out, _, res := c.reply(); out != "B\tbob\t" || res != "+" {
			t.Fatalf("after a refused save: %q %q", out, res)
		}
	}
}

// TestRefused: what behind a gateway has no single backend is refused,
// with a text the doveadm client prints, and the connection goes on.
func TestRefused(t *testing.T) {
	e := startGateway(t, nil)
	c := e.dial(t)
	for _, tc := range []struct {
		line string
		r    refusal
	}{
		{"\t\tmailbox status\t-A\t--\tmessages\tINBOX", errNoUser},
		{"\t\tfetch\ttext\tall", errNoUser},
		{"\talice\tstop", errServerWide},
		{"\t\twho", errServerWide},
		{"\talice\tdirector map", errServerWide},
		{"\talice\tdsync-server\t-u\talice", errServerWide},
		{"\t\tkick\t192.0.2.0/24", errKickMask},
		{"\t\tkick\tuser*", errKickMask},
		{"\tal\x010ice\tfetch", errNUL},
		{"\tunknown\tfetch", errUnknownUser},
		{"\tdown\tfetch", errLookup},
	} {
		c.expect(tc.line, "", "\x04"+tc.r.text+"\n", "-"+tc.r.code)
	}
	if got := append(e.a.lines(), e.b.lines()...); len(got) != 0 {
		t.Fatalf("backends got %q", got)
	}
	c.expect("\talice\tquota get", "A\talice\t", "*", "+")
}

// TestKick: kick is routed by its user mask, which becomes the canonical
// name; the IP ranges go along.
func TestKick(t *testing.T) {
	e := startGateway(t, nil)
	c := e.dial(t)
	c.expect("\t\tkick\t-f\tBob\t192.0.2.0/24", "-f\tbob\t192.0.2.0/24\t", "", "+")
	if got := e.b.lines(); len(got) != 1 || got[0] != "\t\tkick\t-f\tbob\t192.0.2.0/24" {
		t.Fatalf("B got %q", got)
	}
}

// TestBackendDown: a user whose backend does not answer gets -TEMPFAIL and
// a reason, never another backend's answer; a backend lost in the middle
// of a field ends the connection (the client must not take half a field
// for a whole one), between fields it is a -TEMPFAIL.
func TestBackendDown(t *testing.T) {
	e := startGateway(t, nil)
	c := e.dial(t)
	c.expect("\tdead\tmailbox status\t--\tmessages\tINBOX", "", "\x04"+errBackendDown.text+"\n", "-TEMPFAIL")
	c.expect("\talice\tdieclean", "whole\t", "\x04"+errBackendDown.text+"\n", "-TEMPFAIL")
	if out, _, res := c.cmd("\talice\tdie"); res != "EOF" || out != "half a fi" {
		t.Fatalf("die: %q %q", out, res)
	}
	if got := append(e.a.lines(), e.b.lines()...); len(got) != 2 {
		t.Fatalf("backends got %q", got)
	}
}

// TestBackendPassword: a backend refusing the gateway's doveadm password
// is a configuration error: -TEMPFAIL, with the reason in the gateway's
// log.
func TestBackendPassword(t *testing.T) {
	e := startGateway(t, nil)
	e.b.configure(func(f *fakeDoveadm) { f.password = "other" })
	c := e.dial(t)
	c.expect("\tbob\tfetch", "", "\x04"+errBackendSetup.text+"\n", "-TEMPFAIL")
}

// TestHandshake: the version exchange and the authentication, as Dovecot's
// doveadm server does them.
func TestHandshake(t *testing.T) {
	e := startGateway(t, nil)
	// A wrong password is refused: "-", and the connection ends.
	_, hs := dialNet(t, "tcp", e.addr, 2, "wrong")
	if got := strings.Join(hs, ","); got != "VERSION\tdoveadm-client\t1\t2,-,PLAIN,-,EOF" {
		t.Fatalf("wrong password: %q", got)
	}
	// Minor 0 (before 2.2.33): no version line, no multiplexing, no log
	// lines — and the backend's output still arrives whole.
	c, hs := dialNet(t, "tcp", e.addr, 0, testPassword)
	if got := strings.Join(hs, ","); got != "-,PLAIN,+" {
		t.Fatalf("minor 0: %q", got)
	}
	c.expect("\talice\tfetch\ttext", "A\talice\ttext\t", "", "+")
	c.expect("\t\tfetch", "", "", "-USAGE")
	// Not a doveadm client: closed without a word.
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	io.WriteString(raw, "a001 LOGIN x y\r\n")
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(raw); len(b) != 0 {
		t.Fatalf("got %q", b)
	}
	// An unknown flag ends the connection, as in Dovecot.
	c = e.dial(t)
	if _, logs, res := c.cmd("X\talice\tfetch"); res != "EOF" || logs != "\x04doveadm client: Unknown flag: X\n" {
		t.Fatalf("bad flag: %q %q", logs, res)
	}
}

// TestOldBackend: a backend of minor 0 (Dovecot 2.2 before 2.2.33) sends
// its reply plain; the client still gets it multiplexed.
func TestOldBackend(t *testing.T) {
	e := startGateway(t, nil)
	e.a.configure(func(f *fakeDoveadm) { f.minor = 0 })
	c := e.dial(t)
	c.expect("\talice\tfetch\ttext", "A\talice\ttext\t", "", "+")
}

// TestPreauthenticated: a UNIX socket only its owner may open (mode 0600)
// needs no password, as Dovecot's doveadm-server socket.
func TestPreauthenticated(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "doveadm-server")
	e := startGateway(t, func(_ *Server, l *gateway.Listener) {
		l.Address, l.Mode = sock, 0o600
	})
	_ = e
	c, hs := dialNet(t, "unix", sock, 2, "not asked")
	if got := strings.Join(hs, ","); got != "VERSION\tdoveadm-client\t1\t2,+" {
		t.Fatalf("handshake: %q", got)
	}
	c.expect("\tbob\tfetch", "B\tbob\t", "*", "+")
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
}

// TestLeaseHeld: the director's hold on the user lasts while the command
// runs: a move of the user waits for it.
func TestLeaseHeld(t *testing.T) {
	hold := make(chan struct{})
	var seen sync.WaitGroup
	seen.Add(1)
	e := startGateway(t, nil)
	// A backend that answers only when told.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		r.ReadString('\n')
		io.WriteString(c, "VERSION\tdoveadm-client\t1\t0\n-\n")
		r.ReadString('\n')
		io.WriteString(c, "+\n")
		r.ReadString('\n')
		seen.Done()
		<-hold
		io.WriteString(c, "x\t\n+\n")
	}()
	srv := e.listener.Handler.(*Server)
	srv.Pipeline.Ports["doveadm"] = ln.Addr().(*net.TCPAddr).Port
	c := e.dial(t)
	io.WriteString(c.c, "\tcarol\tindex\tINBOX\n")
	seen.Wait()
	d := srv.Pipeline.Director
	key, _ := d.StoreKey("carol", "")
	if u := d.UserLoad(key); u.Deliveries != 1 || u.Sessions != 0 {
		t.Fatalf("holds while the command runs: %+v", u)
	}
	close(hold)
	if out, _, res := c.reply(); out != "x\t" || res != "+" {
		t.Fatalf("%q %q", out, res)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.UserLoad(key).Deliveries != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the lease outlived the command")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
