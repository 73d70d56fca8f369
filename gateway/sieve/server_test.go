// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"encoding/base64"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/internal/gatewaytest"
	"github.com/maildirector/maildirector/mechs"
)

// The tests are transcripts over real loopback sockets: a gateway.Server
// with one listener whose handler is a sieve.Server, a scripted fake
// ManageSieve backend, and a line-oriented client.

const (
	fakeOK          = `OK "Logged in."`
	authFailed      = `NO "Authentication failed."`
	tryLater        = `NO (TRYLATER) "Temporary authentication failure."`
	internalError   = `NO "Internal error occurred. Refer to server log for more information."`
	encryptNeeded   = `NO (ENCRYPT-NEEDED) "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."`
	invalidCommand  = `NO "Error in MANAGESIEVE command received by server."`
	readyOK         = `OK "maildirector ready."`
	noopOK          = `OK "NOOP Completed"`
	capabilityOK    = `OK "Capability completed."`
	tooManyInvalid  = `BYE "Too many invalid MANAGESIEVE commands."`
	tooManyFailures = `BYE "Too many authentication failures."`
)

// capLines are the capability lines a client sees: sasl is the SASL
// list; STARTTLS and XCLIENT appear when offered.
func capLines(sasl string, starttls, xclient bool) []string {
	l := []string{
		`"IMPLEMENTATION" "maildirector"`,
		`"SIEVE" "` + DefaultExtensions + `"`,
		`"NOTIFY" "mailto"`,
		`"SASL" "` + sasl + `"`,
	}
	if starttls {
		l = append(l, `"STARTTLS"`)
	}
	l = append(l, `"VERSION" "1.0"`)
	if xclient {
		l = append(l, `"XCLIENT"`)
	}
	return l
}

// greeting is capLines and the OK.
func greeting(sasl string, starttls, xclient bool) []string {
	return append(capLines(sasl, starttls, xclient), readyOK)
}

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
		pipeline: gatewaytest.NewPipeline(t, "sieve", be.port()),
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
	s.listener = &gateway.Listener{Protocol: "sieve", Address: "127.0.0.1:0", Handler: s.server}
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

// connect dials from the default address (secured: local) and expects
// the greeting.
func (e *env) connect() *client {
	e.t.Helper()
	c := e.dial("")
	c.Expect(greeting("PLAIN LOGIN", false, false)...)
	return c
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// plainLogin is the backend's AUTHENTICATE for user with pass, authzid
// empty; masterLogin is a master user's.
func plainLogin(user, pass string) string {
	return `AUTHENTICATE "PLAIN" "` + b64("\x00"+user+"\x00"+pass) + `"`
}

func masterLogin(user, master, pass string) string {
	return `AUTHENTICATE "PLAIN" "` + b64(user+"\x00"+master+"\x00"+pass) + `"`
}

// xclientLine matches the XCLIENT the gateway forwards for a client at
// ip:port with ttl hops left.
func xclientLine(ip string, port, ttl int) string {
	return `~^XCLIENT ADDR=` + regexp.QuoteMeta(ip) + ` PORT=` + strconv.Itoa(port) +
		` SESSION=[A-Za-z0-9+/]{12} TTL=` + strconv.Itoa(ttl) + `$`
}

const anyXCLIENT = `~^XCLIENT ADDR=127\.0\.0\.1 PORT=\d+ SESSION=[A-Za-z0-9+/]{12} TTL=4$`

func localPort(c *client) int { return c.Conn.LocalAddr().(*net.TCPAddr).Port }

func TestGreetingCapabilityNoopLogout(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("CAPABILITY", append(capLines("PLAIN LOGIN", false, false), capabilityOK)...)
	c.Do("capability", append(capLines("PLAIN LOGIN", false, false), capabilityOK)...)
	c.Do("noop", noopOK)
	c.Do("LOGOUT", `OK "Logout completed."`)
	c.ExpectClosed()
	if n := e.backend.connections(); n != 0 {
		t.Fatalf("backend got %d connections, want 0", n)
	}
}

// TestGreetingSettings: what the Server's fields change, and that the
// whole greeting arrives in one write (Pigeonhole corks it: some clients
// read it with a single read).
func TestGreetingSettings(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.server.Implementation = "Example Sieve"
		s.server.Extensions = "fileinto vacation"
		s.server.Notify = "mailto xmpp"
		s.server.Greeting = `Hello "there".`
		s.server.Mechs = []mechs.Mechanism{mechs.Plain}
	})
	c := e.dial("")
	want := "\"IMPLEMENTATION\" \"Example Sieve\"\r\n\"SIEVE\" \"fileinto vacation\"\r\n\"NOTIFY\" \"mailto xmpp\"\r\n" +
		"\"SASL\" \"PLAIN\"\r\n\"VERSION\" \"1.0\"\r\nOK \"Hello \\\"there\\\".\"\r\n"
	buf := make([]byte, 4096)
	n, err := c.Conn.Read(buf)
	if err != nil || string(buf[:n]) != want {
		t.Fatalf("greeting in one read: %q, %v\nwant %q", buf[:n], err, want)
	}
}

// TestPlaintextPolicy: a client from 127.0.0.2 talking to 127.0.0.1 is
// neither TLS, nor trusted, nor local: no plaintext mechanism is offered
// or accepted.
func TestPlaintextPolicy(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		e := start(t)
		c := e.dial("127.0.0.2")
		c.Expect(greeting("", false, false)...)
		c.Do("CAPABILITY", append(capLines("", false, false), capabilityOK)...)
		c.Do(`AUTHENTICATE "PLAIN" "`+b64("\x00bob\x00secret")+`"`, encryptNeeded)
		c.Do(`AUTHENTICATE "LOGIN"`, encryptNeeded)
		c.Do(`AUTHENTICATE "PLAIN"`, encryptNeeded)
		// Refusals are not failed logins: no BYE after three.
		ir := b64("\x00bob\x00secret")
		c.Do(`AUTHENTICATE "PLAIN" {`+strconv.Itoa(len(ir))+"+}\r\n"+ir, encryptNeeded)
		c.Do("NOOP", noopOK)
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
			c.Expect(greeting("PLAIN LOGIN", false, name == "trusted")...)
			c.Do(`AUTHENTICATE "PLAIN" "`+b64("\x00bob\x00secret")+`"`, fakeOK)
			c.Do("LISTSCRIPTS", `OK "fake LISTSCRIPTS"`)
		})
	}
}

// TestUnknownCommand: the commands of the authenticated state, and
// anything else, are invalid before login.
func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("LISTSCRIPTS", invalidCommand)
	c.Do("NOOP", noopOK)
	c.Do(`PUTSCRIPT "a" {5+}`+"\r\nkeep;", invalidCommand)
	c.Do("NOOP", noopOK)
	// XCLIENT is for trusted peers only; managesieve-login says so
	// without counting it as invalid.
	c.Do("XCLIENT ADDR=192.0.2.1", `NO "You are not from trusted IP"`)
	c.Do("HAVESPACE", tooManyInvalid)
	c.ExpectClosed()
}

func TestBadSyntax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ line, want string }{
		{"", invalidCommand},
		{" NOOP", invalidCommand},
		{`"NOOP"`, invalidCommand},
		{"NOOP(", invalidCommand},
		{"CAPABILITY now", invalidCommand},
		{"LOGOUT now", invalidCommand},
		{"STARTTLS now", invalidCommand},
		{`NOOP "a" "b"`, invalidCommand},
		// Pigeonhole's parser's words.
		{`NOOP "a`, `NO "String contains invalid character."`},
		{`NOOP "a\b"`, `NO "Escaped quoted-string character is not a QUOTED-SPECIAL."`},
		{"NOOP {3}x", `NO "Missing LF after literal size"`},
		{"NOOP {x}", `NO "Invalid literal size"`},
		{"NOOP {-1}", `NO "Invalid literal size"`},
		{"NOOP {+1}", `NO "Invalid literal size"`},
		{"NOOP {}", `NO "Invalid literal size"`},
		// Strings need no space after them, spaces may pile up: two
		// strings are NOOP's too many arguments.
		{`NOOP "a""b"`, invalidCommand},
		{`NOOP  "a"`, `OK (TAG "a") "Done"`},
		{`NOOP "a" `, `OK (TAG "a") "Done"`},
		// AUTHENTICATE as managesieve-login reads it: a mechanism string,
		// then an initial response string, and nothing else looked at.
		{"AUTHENTICATE", invalidCommand},
		{"AUTHENTICATE PLAIN", invalidCommand},
		{`AUTHENTICATE ""`, invalidCommand},
		{`AUTHENTICATE "PLAIN" AGJvYgBzZWNyZXQ=`, `NO "Invalid AUTHENTICATE initial response."`},
		{`AUTHENTICATE "PLAIN" "a" "b"`, `NO "Invalid base64 data in initial response"`},
	} {
		t.Run(tc.line, func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.Do(tc.line, tc.want)
			c.Do("NOOP", noopOK)
		})
	}
}

// TestNoopTag: NOOP echoes a string argument in a TAG response code
// (RFC 5804 2.12), as a literal when it cannot be quoted.
func TestNoopTag(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do(`NOOP "STARTTLS-RESYNC-CAPA"`, `OK (TAG "STARTTLS-RESYNC-CAPA") "Done"`)
	c.Do(`Noop "a\"b\\c"`, `OK (TAG "a\"b\\c") "Done"`)
	c.Do(`NOOP ""`, `OK (TAG "") "Done"`)
	c.Do("NOOP {3+}\r\nx y", `OK (TAG "x y") "Done"`)
	c.Do("NOOP {3}\r\nx\"y", `OK (TAG "x\"y") "Done"`)
	c.Do("NOOP {4+}\r\na\r\nb", "OK (TAG {4}", "a", `b) "Done"`)
	long := strings.Repeat("t", 1025)
	c.Do("NOOP {1025+}\r\n"+long, "OK (TAG {1025}", long+`) "Done"`)
	c.Do(`NOOP "ok" `+"\t", `NO "Missing or invalid argument."`)
	c.Do("NOOP tag", `NO "Invalid echo tag."`)
	c.Do("NOOP tag", `NO "Invalid echo tag."`)
	c.Do("NOOP tag", `NO "Invalid echo tag."`)
	c.Do("NOOP", noopOK)
}
