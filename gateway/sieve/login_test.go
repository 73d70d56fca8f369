// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/internal/gatewaytest"
)

// authPlain is the client's AUTHENTICATE "PLAIN" for user and pass.
func authPlain(user, pass string) string {
	return `AUTHENTICATE "PLAIN" "` + b64("\x00"+user+"\x00"+pass) + `"`
}

// TestBackendLines: the exact lines the backend gets, as Pigeonhole's
// managesieve-proxy sends them: XCLIENT with the client's address, then
// AUTHENTICATE "PLAIN" with authzid empty, or authzid = user and authcid
// = master for a master-user login.
func TestBackendLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, args, login string
		backend           []string
	}{
		{"normal", "proxy=y nopassword=y", authPlain("bob", "secret"),
			[]string{plainLogin("bob", "secret")}},
		{"master from the passdb", "proxy=y nopassword=y master=admin pass=mpw", authPlain("bob", "secret"),
			[]string{masterLogin("bob", "admin", "mpw")}},
		{"master from the client", "proxy=y nopassword=y", `AUTHENTICATE "PLAIN" "` + b64("bob\x00admin\x00apw") + `"`,
			[]string{masterLogin("bob", "admin", "apw")}},
		{"pass", "proxy=y nopassword=y pass=other", authPlain("bob", "secret"),
			[]string{plainLogin("bob", "other")}},
		{"destuser", "proxy=y nopassword=y destuser=%Ln", authPlain("Bob@Example.COM", "secret"),
			[]string{plainLogin("bob", "secret")}},
		{"user", "proxy=y nopassword=y user=carol", authPlain("bob", "secret"),
			[]string{plainLogin("carol", "secret")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, withArgs(tc.args))
			c := e.connect()
			c.Do(tc.login, fakeOK)
			want := append([]string{xclientLine("127.0.0.1", localPort(c), 4)}, tc.backend...)
			e.backend.expectReceived(t, want...)
		})
	}
}

// TestXCLIENTConditions: no XCLIENT when the passdb says
// proxy_not_trusted or the backend does not offer it; a backend that
// offers it and then refuses it is misconfigured.
func TestXCLIENTConditions(t *testing.T) {
	t.Parallel()
	t.Run("proxy_not_trusted", func(t *testing.T) {
		t.Parallel()
		e := start(t, withArgs("proxy=y nopassword=y proxy_not_trusted"))
		e.connect().Do(authPlain("bob", "secret"), fakeOK)
		e.backend.expectReceived(t, plainLogin("bob", "secret"))
	})
	t.Run("backend without XCLIENT", func(t *testing.T) {
		t.Parallel()
		e := start(t, func(s *setup) { s.backend.caps = []string{`"SASL" "PLAIN"`, `"VERSION" "1.0"`} })
		e.connect().Do(authPlain("bob", "secret"), fakeOK)
		e.backend.expectReceived(t, plainLogin("bob", "secret"))
	})
	t.Run("XCLIENT refused", func(t *testing.T) {
		t.Parallel()
		e := start(t, func(s *setup) { s.backend.xclient = `NO "You are not from trusted IP"` })
		c := e.connect()
		c.Do(authPlain("bob", "secret"), internalError)
		c.Do("NOOP", noopOK)
	})
	t.Run("XCLIENT answered with BYE", func(t *testing.T) {
		t.Parallel()
		e := start(t, func(s *setup) { s.backend.xclient = `BYE "Shutting down"` })
		e.connect().Do(authPlain("bob", "secret"), tryLater)
	})
}

// TestLoginRelay: the client's OK is the backend's; then bytes flow both
// ways and the session is registered meanwhile.
func TestLoginRelay(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.backend.answer = func(string, string, string) string { return `OK (SASL "c2VydmVy") "Logged in, fake."` }
	})
	c := e.connect()
	c.Do(authPlain("bob", "secret"), `OK (SASL "c2VydmVy") "Logged in, fake."`)
	c.Do("LISTSCRIPTS", `OK "fake LISTSCRIPTS"`)
	c.Do(`PUTSCRIPT "s" {6+}`+"\r\nkeep;\n", `OK "fake PUTSCRIPT"`)
	e.backend.expectReceived(t, anyXCLIENT, plainLogin("bob", "secret"), "LISTSCRIPTS", "PUTSCRIPT \"s\" {6+}\r\nkeep;\n")
	reg := e.server.Registry
	if n := reg.Count(); n != 1 {
		t.Fatalf("registry holds %d sessions, want 1", n)
	}
	s := reg.List()[0]
	if s.User != "bob" || s.Service != "sieve" || s.Backend != "127.0.0.1:"+strconv.Itoa(e.backend.port()) ||
		s.Remote != netip.MustParseAddrPort(c.Conn.LocalAddr().String()) || len(s.ID) != 12 {
		t.Fatalf("registered session %+v", s)
	}
	c.Do("LOGOUT", `OK "fake LOGOUT"`)
	c.ExpectClosed()
	waitFor(t, func() bool { return reg.Count() == 0 })
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLoginPipelined: commands sent with AUTHENTICATE, in the same write,
// reach the backend after the login.
func TestLoginPipelined(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Write(authPlain("bob", "secret") + "\r\nLISTSCRIPTS\r\nGETSCRIPT \"a\"\r\n")
	c.Expect(fakeOK, `OK "fake LISTSCRIPTS"`, `OK "fake GETSCRIPT"`)
	e.backend.expectReceived(t, anyXCLIENT, plainLogin("bob", "secret"), "LISTSCRIPTS", `GETSCRIPT "a"`)
}

// TestBackendLingering: what the backend sent right after its OK, in the
// same write, reaches the client.
func TestBackendLingering(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.backend.afterLogin = "\"early\"\r\nOK \"unsolicited\"\r\n" })
	c := e.connect()
	c.Do(authPlain("bob", "secret"), fakeOK, `"early"`, `OK "unsolicited"`)
	c.Do("NOOP", `OK "fake NOOP"`)
}

// TestBackendOKWithLiteral: a backend's OK whose text is a literal
// reaches the client whole.
func TestBackendOKWithLiteral(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.backend.answer = func(string, string, string) string { return "OK {10}\r\nLogged\r\nin" }
	})
	c := e.connect()
	c.Do(authPlain("bob", "secret"), "OK {10}", "Logged", "in")
	c.Do("NOOP", `OK "fake NOOP"`)
}

// TestTrustedXCLIENT: a trusted peer may forward the real client with
// XCLIENT; the backend, the passdb and the relay see it. The TTL only
// goes down.
func TestTrustedXCLIENT(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen auth.Request
	e := start(t, func(s *setup) {
		s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.1/32")
		s.pipeline.Passdb = gatewaytest.PassdbFunc(func(_ context.Context, r *auth.Request) (auth.Result, error) {
			mu.Lock()
			seen = *r
			mu.Unlock()
			return auth.Result{Status: auth.StatusOK}, nil
		})
	})
	c := e.dial("")
	c.Expect(greeting("PLAIN LOGIN", false, true)...)
	c.Do("XCLIENT ADDR=192.0.2.9 PORT=4321 SESSION=sess-42 TTL=3 FORWARD=eA== DESTADDR=198.51.100.1", `OK "Updated"`)
	c.Do("XCLIENT TTL=99", `OK "Updated"`)
	c.Do(authPlain("bob", "secret"), fakeOK)
	e.backend.expectReceived(t, "XCLIENT ADDR=192.0.2.9 PORT=4321 SESSION=sess-42 TTL=2", plainLogin("bob", "secret"))
	mu.Lock()
	defer mu.Unlock()
	if seen.Remote.String() != "192.0.2.9:4321" || seen.Session != "sess-42" || seen.Service != "sieve" ||
		seen.Mech != "PLAIN" || !seen.Secured || seen.TLS {
		t.Fatalf("passdb request %+v", seen)
	}
	reg := e.server.Registry
	waitFor(t, func() bool { return reg.Count() == 1 })
	if s := reg.List(); s[0].Remote.String() != "192.0.2.9:4321" || s[0].ID != "sess-42" {
		t.Fatalf("registered %+v", s)
	}
}

func TestTrustedXCLIENTInvalid(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.1/32") })
	c := e.dial("")
	c.Expect(greeting("PLAIN LOGIN", false, true)...)
	c.Do("XCLIENT ADDR=nowhere", invalidCommand)
	c.Do("XCLIENT PORT=70000", invalidCommand)
	c.Do(`XCLIENT "ADDR=192.0.2.9"`, tooManyInvalid)
	c.ExpectClosed()
}

// TestProxyTTL: a trusted peer with one hop left is a proxy loop.
func TestProxyTTL(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.0/8") })
	c := e.dial("")
	c.Expect(greeting("PLAIN LOGIN", false, true)...)
	c.Do("XCLIENT TTL=1", `OK "Updated"`)
	c.Do(authPlain("bob", "secret"), internalError)
	if n := e.backend.connections(); n != 0 {
		t.Fatalf("backend got %d connections, want 0", n)
	}
}

// TestPinnedHost: host and port from the passdb bypass the director and
// the default port (which here leads nowhere).
func TestPinnedHost(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.pipeline.Passdb = gatewaytest.StaticChain(t, "proxy=y nopassword=y host=127.0.0.1 port="+strconv.Itoa(s.backend.port()))
		s.pipeline.Ports["sieve"] = gatewaytest.ClosedPort(t)
	})
	e.connect().Do(authPlain("bob", "secret"), fakeOK)
	e.backend.expectReceived(t, anyXCLIENT, plainLogin("bob", "secret"))
}

// TestBackendWithoutPlain: a backend that hides PLAIN (it wants TLS, or
// does not trust us) is our configuration's fault, not the user's.
func TestBackendWithoutPlain(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.backend.caps = []string{`"SASL" ""`, `"VERSION" "1.0"`} })
	c := e.connect()
	c.Do(authPlain("bob", "secret"), internalError)
	c.Do("NOOP", noopOK)
	e.backend.expectReceived(t)
}
