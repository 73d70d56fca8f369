// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/internal/gatewaytest"
	"github.com/maildirector/maildirector/mechs"
)

// The tests are transcripts over real loopback sockets: a gateway.Server
// with one listener whose handler is an imap.Server, a scripted fake IMAP
// backend, and a line-oriented client.

const (
	fakeGreeting = "* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN] fake ready"
	fakeOK       = "OK [CAPABILITY IMAP4rev1 IDLE NAMESPACE] Logged in"
	preCaps      = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"
	// greetingLocal is what a secured cleartext client sees.
	greetingLocal = "* OK [CAPABILITY " + preCaps + " AUTH=PLAIN AUTH=LOGIN] maildirector ready."
	// greetingInsecure is what a client from 127.0.0.2 sees without
	// trusted networks or allow_plaintext.
	greetingInsecure = "* OK [CAPABILITY " + preCaps + " LOGINDISABLED] maildirector ready."
	authFailed       = "NO [AUTHENTICATIONFAILED] Authentication failed."
	unavailable      = "NO [UNAVAILABLE] Temporary authentication failure."
	serverBug        = "NO [SERVERBUG] Internal error occurred. Refer to server log for more information."
	privacyRequired  = "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
	// plaintextAlert is imap-login's warning before it refuses a LOGIN
	// sent in the clear.
	plaintextAlert = "* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed."
	// saslPlaintextDisabled is the auth server's refusal of a plaintext
	// mechanism on an insecure connection.
	saslPlaintextDisabled = "NO [PRIVACYREQUIRED] Plaintext authentication disabled."
)

// setup is what a test may change before the gateway starts.
type setup struct {
	listener *gateway.Listener
	server   *Server
	pipeline *gateway.Pipeline
	limits   gateway.Limits
	backend  *fakeBackend
	log      *slog.Logger // the gateway.Server's
}

type env struct {
	setup
	t    testing.TB
	addr string // the gateway's address
}

// start runs a gateway in front of a fake backend; opts adjust the setup.
func start(t testing.TB, opts ...func(*setup)) *env {
	t.Helper()
	be := newFakeBackend(t)
	s := setup{
		backend:  be,
		pipeline: gatewaytest.NewPipeline(t, "imap", be.port()),
		limits:   gatewaytest.Limits(),
		log:      gatewaytest.Discard,
	}
	s.server = &Server{
		Pipeline:        s.pipeline,
		Registry:        &gateway.Registry{},
		Mechs:           []mechs.Mechanism{mechs.Plain, mechs.Login},
		MaxAuthFailures: 3,
		MaxBadCommands:  3,
	}
	s.listener = &gateway.Listener{Protocol: "imap", Address: "127.0.0.1:0", Handler: s.server}
	for _, o := range opts {
		o(&s)
	}
	be.run()
	return &env{setup: s, t: t, addr: gatewaytest.Serve(t, s.listener, s.limits, s.log)}
}

// withArgs replaces the passdb by a static one with args.
func withArgs(args string) func(*setup) {
	return func(s *setup) { s.pipeline.Passdb = gatewaytest.StaticChain(s.backend.t, args) }
}

// client is one transcript's client side, with the protocol's own
// steps added.
type client struct{ *gatewaytest.Client }

// dial connects from the loopback address from ("" for the default) and
// returns the client before the greeting.
func (e *env) dial(from string) *client {
	return &client{gatewaytest.Dial(e.t, e.addr, from)}
}

func (e *env) wrap(conn net.Conn) *client {
	return &client{gatewaytest.Wrap(e.t, conn)}
}

// connect dials from the default address and expects the local greeting.
func (e *env) connect() *client {
	e.t.Helper()
	c := e.dial("")
	c.Expect(greetingLocal)
	return c
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// fakeBackend is a scripted IMAP backend. It records every command the
// gateway sends (a command with literals as one string, literal bytes
// inline), answers ID, LOGIN and AUTHENTICATE PLAIN, and once logged in
// answers every command "<tag> OK fake <NAME>".
type fakeBackend struct {
	t  testing.TB
	ln net.Listener

	// Set before start returns, read by the connections.
	greeting string // first line sent
	caps     string // reply to CAPABILITY
	// answer is the tagged reply (without tag) to a login; "" hangs up.
	// The default accepts every password but "wrong".
	answer func(user, pass, authzid string) string
	// afterLogin is sent in the same write as the login's OK.
	afterLogin string

	mu    sync.Mutex
	cmds  []string
	conns int
}

func newFakeBackend(t testing.TB) *fakeBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBackend{t: t, ln: ln, greeting: fakeGreeting, caps: "IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN"}
	b.answer = func(user, pass, authzid string) string {
		if pass == "wrong" {
			return authFailed
		}
		return fakeOK
	}
	t.Cleanup(func() { ln.Close() })
	return b
}

func (b *fakeBackend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *fakeBackend) run() {
	go func() {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns++
			b.mu.Unlock()
			b.t.Cleanup(func() { c.Close() })
			go b.serve(c)
		}
	}()
}

// received returns the commands recorded so far.
func (b *fakeBackend) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.cmds...)
}

func (b *fakeBackend) connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns
}

func (b *fakeBackend) record(s string) {
	b.mu.Lock()
	b.cmds = append(b.cmds, s)
	b.mu.Unlock()
}

// fakeSource feeds parseCommand from the backend's connection, keeping the
// raw command.
type fakeSource struct {
	r   *bufio.Reader
	w   io.Writer
	raw strings.Builder
}

func (s *fakeSource) literal(n int, sync bool) ([]byte, error) {
	if sync {
		io.WriteString(s.w, "+ go ahead\r\n")
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(s.r, buf)
	s.raw.WriteString("\r\n")
	s.raw.Write(buf)
	return buf, err
}

func (s *fakeSource) nextLine() ([]byte, error) {
	l, err := s.r.ReadString('\n')
	l = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
	s.raw.WriteString(l)
	return []byte(l), err
}

func (b *fakeBackend) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	src := &fakeSource{r: r, w: c}
	reply := func(lines ...string) {
		io.WriteString(c, strings.Join(lines, "\r\n")+"\r\n")
	}
	reply(b.greeting)
	loggedIn := false
	for {
		src.raw.Reset()
		first, err := src.nextLine()
		if err != nil {
			return
		}
		cmd, err := parseCommand(first, src, 1<<20)
		b.record(src.raw.String())
		if err != nil {
			if cmd == nil {
				return
			}
			reply(cmd.tag + " BAD fake: " + err.Error())
			continue
		}
		if loggedIn {
			if cmd.name == "LOGOUT" {
				reply("* BYE fake", cmd.tag+" OK fake LOGOUT")
				return
			}
			reply(cmd.tag + " OK fake " + cmd.name)
			continue
		}
		var user, pass, authz string
		switch cmd.name {
		case "CAPABILITY":
			reply("* CAPABILITY "+b.caps, cmd.tag+" OK done")
			continue
		case "ID":
			reply("* ID NIL", cmd.tag+" OK ID completed.")
			continue
		case "LOGIN":
			user, _ = cmd.args[0].astring()
			pass, _ = cmd.args[1].astring()
		case "AUTHENTICATE":
			var ir string
			if len(cmd.args) == 2 {
				ir = cmd.args[1].s
			} else {
				reply("+ ")
				l, err := src.nextLine()
				if err != nil {
					return
				}
				b.record(string(l))
				ir = string(l)
			}
			dec, _ := base64.StdEncoding.DecodeString(ir)
			parts := strings.Split(string(dec), "\x00")
			if len(parts) != 3 {
				reply(cmd.tag + " BAD fake: broken PLAIN")
				continue
			}
			authz, user, pass = parts[0], parts[1], parts[2]
		default:
			reply(cmd.tag + " BAD fake: not logged in")
			continue
		}
		ans := b.answer(user, pass, authz)
		if ans == "" {
			return
		}
		if strings.HasPrefix(ans, "OK") {
			loggedIn = true
			io.WriteString(c, cmd.tag+" "+ans+"\r\n"+b.afterLogin)
			continue
		}
		reply(cmd.tag + " " + ans)
	}
}

// idLine matches the ID the gateway forwards for a client at ip:port
// connected to the gateway at gw.
func idLine(ip string, port int, gw string, ttl int) *regexp.Regexp {
	gh, gp, _ := net.SplitHostPort(gw)
	return regexp.MustCompile(`^I ID \("x-session-id" "[A-Za-z0-9+/]{12}" ` +
		`"x-originating-ip" "` + regexp.QuoteMeta(ip) + `" "x-originating-port" "` + strconv.Itoa(port) + `" ` +
		`"x-connected-ip" "` + regexp.QuoteMeta(gh) + `" "x-connected-port" "` + gp + `" ` +
		`"x-proxy-ttl" "` + strconv.Itoa(ttl) + `"\)$`)
}

func localPort(c *client) int { return c.Conn.LocalAddr().(*net.TCPAddr).Port }

// expectReceived asserts the backend's commands, exactly and in order; a
// want starting with "~" is a regular expression.
func (b *fakeBackend) expectReceived(t testing.TB, want ...string) {
	t.Helper()
	got := b.received()
	if len(got) != len(want) {
		t.Fatalf("backend received %d commands %q, want %d %q", len(got), got, len(want), want)
	}
	for i, w := range want {
		if re, ok := strings.CutPrefix(w, "~"); ok {
			if !regexp.MustCompile(re).MatchString(got[i]) {
				t.Fatalf("backend command %d: got %q, want match %q", i, got[i], re)
			}
		} else if got[i] != w {
			t.Fatalf("backend command %d: got %q, want %q", i, got[i], w)
		}
	}
}

func TestGreetingCapabilityNoopLogout(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("a1 CAPABILITY",
		"* CAPABILITY "+preCaps+" AUTH=PLAIN AUTH=LOGIN",
		"a1 OK Pre-login capabilities listed, post-login capabilities have more.")
	c.Do("a2 noop", "a2 OK NOOP completed.")
	c.Do("a3 LOGOUT", "* BYE Logging out", "a3 OK Logout completed.")
	c.ExpectClosed()
	if n := e.backend.connections(); n != 0 {
		t.Fatalf("backend got %d connections, want 0", n)
	}
}

func TestGreetingText(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.server.Greeting = "Hello there." })
	c := e.dial("")
	c.Expect("* OK [CAPABILITY " + preCaps + " AUTH=PLAIN AUTH=LOGIN] Hello there.")
}

// TestPlaintextPolicy: a client from 127.0.0.2 talking to 127.0.0.1 is
// neither TLS, nor trusted, nor local.
func TestPlaintextPolicy(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		e := start(t)
		c := e.dial("127.0.0.2")
		c.Expect(greetingInsecure)
		c.Do("a1 CAPABILITY", "* CAPABILITY "+preCaps+" LOGINDISABLED", "a1 OK ...")
		c.Do("a2 LOGIN bob secret", plaintextAlert, "a2 "+privacyRequired)
		c.Do("a3 AUTHENTICATE PLAIN "+b64("\x00bob\x00secret"), "a3 "+saslPlaintextDisabled)
		c.Do("a4 AUTHENTICATE LOGIN", "a4 "+saslPlaintextDisabled)
		// Refusals are not failed logins: no BYE after three.
		c.Do("a5 LOGIN bob secret", plaintextAlert, "a5 "+privacyRequired)
		c.Do("a6 NOOP", "a6 OK NOOP completed.")
		if n := e.backend.connections(); n != 0 {
			t.Fatalf("backend got %d connections, want 0", n)
		}
	})
	for name, opt := range map[string]func(*setup){
		"allow_plaintext": func(s *setup) { s.listener.AllowPlaintext = true },
		"trusted":         func(s *setup) { s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.2/32") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, opt)
			c := e.dial("127.0.0.2")
			c.Expect(greetingLocal)
			c.Do("a1 LOGIN bob secret", "a1 "+fakeOK)
			c.Do("a2 NOOP", "a2 OK fake NOOP")
			c2 := e.dial("127.0.0.2")
			c2.Expect(greetingLocal)
			c2.Do("b1 AUTHENTICATE PLAIN "+b64("\x00bob\x00secret"), "b1 "+fakeOK)
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("a1 SELECT INBOX", "a1 BAD Error in IMAP command received by server.")
	c.Do("a2 NOOP", "a2 OK NOOP completed.")
}

func TestBadSyntax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ line, want string }{
		{"", "* BAD Error in IMAP command received by server."},
		{" NOOP", "* BAD Error in IMAP command received by server."},
		{"a+ NOOP", "* BAD Error in IMAP command received by server."},
		{"a1", "a1 BAD Error in IMAP command received by server."},
		{"a1 (NOOP)", "a1 BAD Error in IMAP command received by server."},
		{"a1 LOGIN", "a1 BAD Error in IMAP command received by server."},
		{"a1 LOGIN bob", "a1 BAD Error in IMAP command received by server."},
		{"a1 LOGIN bob secret x", "a1 BAD Error in IMAP command received by server."},
		{"a1 LOGIN (bob) secret", "a1 BAD Error in IMAP command received by server."},
		{"a1 LOGIN bob  secret", "a1 BAD Error in IMAP command: Invalid characters in atom."},
		{"a1 LOGIN bob secret ", "a1 BAD Error in IMAP command: Missing argument."},
		{`a1 LOGIN "bob secret`, `a1 BAD Error in IMAP command: Missing '"'.`},
		{`a1 LOGIN "b\ob" secret`, "a1 BAD Error in IMAP command: Invalid escape in quoted string."},
		{`a1 LOGIN "bob"secret`, "a1 BAD Error in IMAP command: Missing space."},
		{"a1 LOGIN {3}x", "a1 BAD Error in IMAP command: Broken literal."},
		{"a1 LOGIN {x}", "a1 BAD Error in IMAP command: Broken literal size."},
		{"a1 LOGIN {-1}", "a1 BAD Error in IMAP command: Broken literal size."},
		// ID as Dovecot's imap-login reads it: any number of parameters,
		// keys up to 30 octets, values up to the line limit; anything
		// else is "Invalid ID parameters".
		{"a1 ID ((((()))))", "a1 BAD Invalid ID parameters"},
		{"a1 ID (", "a1 BAD Invalid ID parameters"},
		{`a1 ID (name "v")`, "a1 BAD Invalid ID parameters"},
		{`a1 ID ("k" v)`, "a1 BAD Invalid ID parameters"},
		{"a1 ID foo", "a1 BAD Invalid ID parameters"},
		{`a1 ID (("a") "b")`, "a1 BAD Invalid ID parameters"},
		{`a1 ID ("a" ("b"))`, "a1 BAD Invalid ID parameters"},
		{`a1 ID ("` + strings.Repeat("k", 31) + `" "v")`, "a1 BAD Invalid ID parameters"},
		{`a1 ID ("k" "v" NIL "w")`, "a1 BAD Invalid ID parameters"},
		{`a1 ID ("k" "v"` + "\x01" + `)`, "a1 BAD Invalid ID parameters"},
		{"a1 STARTTLS now", "a1 BAD TLS support isn't enabled."}, // arguments are not looked at
		{"a1 STARTTLS", "a1 BAD TLS support isn't enabled."},
		{"a1 AUTHENTICATE", "a1 BAD Error in IMAP command received by server."},
		{`a1 AUTHENTICATE "PLAIN"`, "a1 NO [ALERT] Unsupported authentication mechanism."},
		{"a1 AUTHENTICATE PLAIN a b", "a1 BAD Invalid base64 data in initial response"},
		{"a1 AUTHENTICATE PLAIN (x)", "a1 BAD Invalid base64 data in initial response"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.Do(tc.line, tc.want)
			c.Do("z NOOP", "z OK NOOP completed.")
		})
	}
}

func TestIDResponse(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("a1 ID NIL", `* ID ("name" "maildirector")`, "a1 OK ID completed.")
	// ENABLE before login is answered as imap-login does.
	c.Do("e1 ENABLE CONDSTORE", "* ENABLED", "e1 OK ENABLE ignored in non-authenticated state.")
	c.Do(`a2 ID ("name" "client" "version" NIL)`, `* ID ("name" "maildirector")`, "a2 OK ID completed.")
	c.Do(`a3 id ("x-originating-ip" "192.0.2.9")`, `* ID ("name" "maildirector")`, "a3 OK ID completed.")
	// What Dovecot takes, we take: a key without a value, long values,
	// more than RFC 2971's 30 pairs.
	c.Do(`a4 ID ("name")`, `* ID ("name" "maildirector")`, "a4 OK ID completed.")
	c.Do(`a41 ID`, `* ID ("name" "maildirector")`, "a41 OK ID completed.")
	c.Do(`a42 ID ("a" "b") x`, `* ID ("name" "maildirector")`, "a42 OK ID completed.")
	c.Do(`a5 ID ("k" "`+strings.Repeat("v", 4000)+`")`, `* ID ("name" "maildirector")`, "a5 OK ID completed.")
	c.Do("a6 ID ("+strings.Repeat(`"k" "v" `, 30)+`"k" "v")`, `* ID ("name" "maildirector")`, "a6 OK ID completed.")
	// A long ID (about 30 KiB, 200 fields: some clients and test suites
	// send such) is read as a stream, far past the line limit.
	var long strings.Builder
	long.WriteString("a7 ID (")
	for i := range 200 {
		if i > 0 {
			long.WriteByte(' ')
		}
		fmt.Fprintf(&long, `"key-%03d" "%s"`, i, strings.Repeat("x", 140))
	}
	long.WriteString(")")
	if long.Len() < 30000 {
		t.Fatalf("long ID is only %d bytes", long.Len())
	}
	c.Do(long.String(), `* ID ("name" "maildirector")`, "a7 OK ID completed.")
	c.Do("a8 NOOP", "a8 OK NOOP completed.")
	// A refused long ID loses its line, not the session's step.
	c.Do(`a9 ID ("`+strings.Repeat("k", 40)+`" "`+strings.Repeat("v", 20000)+`")`, "a9 BAD Invalid ID parameters")
	c.Do("b1 NOOP", "b1 OK NOOP completed.")
	// Literals, synchronizing and not.
	c.Write("b2 ID ({3}\r\n")
	c.Expect("+ OK")
	c.Write(`key "value" {5+}` + "\r\n" + "value)\r\n")
	c.Expect(`* ID ("name" "maildirector")`, "b2 OK ID completed.")
	// A synchronizing literal over the limit is refused at once: the
	// client waits for our answer before sending anything more.
	c2 := e.connect()
	c2.Write("b21 ID (\"k\" {100000}\r\n")
	c2.Expect("b21 BAD Error in IMAP command: Literal too large (max 8192).")
	c2.Do("b22 NOOP", "b22 OK NOOP completed.")
	// A refused ID whose line ended with a bare LF loses no more than it.
	c2.Write("b23 ID (\"k\" \"v\"\n")
	c2.Expect("b23 BAD Invalid ID parameters")
	c2.Do("b24 NOOP", "b24 OK NOOP completed.")
	// An element over the line limit is too long, as in Dovecot.
	c.Do(`b3 ID ("k" "`+strings.Repeat("v", 9000)+`")`, "* BYE Too long command line.")
}
