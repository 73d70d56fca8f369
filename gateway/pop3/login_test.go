// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/internal/gatewaytest"
)

const anyXCLIENT = `~^XCLIENT ADDR=127\.0\.0\.1 PORT=\d+ SESSION=\S+ TTL=4$`

// TestUserPass checks how USER and PASS are read from the client and
// written to the backend, byte for byte.
func TestUserPass(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		talk    func(c *client)
		backend []string // after XCLIENT
	}{
		{"plain", func(c *client) {
			c.login("bob", "secret", fakeOK)
		}, []string{"USER bob", "PASS secret"}},
		// auth_username_format %Lu: the backend gets the name the passdb
		// chain settled on, as Dovecot's proxy sends it.
		{"lower case commands", func(c *client) {
			c.Do("user Bob", "+OK")
			c.Do("pass Secret", fakeOK)
		}, []string{"USER bob", "PASS Secret"}},
		// RFC 1939 7: PASS has one argument, spaces included.
		{"spaces in the password", func(c *client) {
			c.login("bob", " p w ", fakeOK)
		}, []string{"USER bob", "PASS  p w "}},
		{"empty password", func(c *client) {
			c.Do("USER bob", "+OK")
			c.Do("PASS", fakeOK)
		}, []string{"USER bob", "PASS "}},
		{"8-bit password", func(c *client) {
			c.login("bob", "p\xc3\xa4sswd", fakeOK)
		}, []string{"USER bob", "PASS p\xc3\xa4sswd"}},
		{"the last USER counts", func(c *client) {
			c.Do("USER carol", "+OK")
			c.login("bob", "secret", fakeOK)
		}, []string{"USER bob", "PASS secret"}},
		{"bare LF line ends", func(c *client) {
			c.Write("USER bob\nPASS secret\n")
			c.Expect("+OK", fakeOK)
		}, []string{"USER bob", "PASS secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t)
			tc.talk(e.connect())
			e.backend.expectReceived(t, append([]string{anyXCLIENT}, tc.backend...)...)
		})
	}
}

// TestPassConsumesUser: a failed PASS forgets the USER before it.
func TestPassConsumesUser(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.login("bob", "wrong", authFailed)
	c.Do("PASS secret", "-ERR No username given.")
}

// TestLoginRelay: the client's +OK is the backend's; then bytes flow both
// ways and the session is registered meanwhile.
func TestLoginRelay(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.login("bob", "secret", "+OK Logged in.")
	c.Do("STAT", "+OK fake STAT")
	c.Do("RETR 1", "+OK fake RETR")
	e.backend.expectReceived(t, anyXCLIENT, "USER bob", "PASS secret", "STAT", "RETR 1")
	reg := e.server.Registry
	if n := reg.Count(); n != 1 {
		t.Fatalf("registry holds %d sessions, want 1", n)
	}
	s := reg.List()[0]
	if s.User != "bob" || s.Service != "pop3" || s.Backend != "127.0.0.1:"+strconv.Itoa(e.backend.port()) ||
		s.Remote != netip.MustParseAddrPort(c.Conn.LocalAddr().String()) {
		t.Fatalf("registered session %+v", s)
	}
	c.Do("QUIT", "+OK fake QUIT")
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

// TestLoginPipelined: RFC 2449 PIPELINING: commands sent with PASS, in the
// same write, reach the backend after the login.
func TestLoginPipelined(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Write("USER bob\r\nPASS secret\r\nSTAT\r\nLIST\r\nQUIT\r\n")
	c.Expect("+OK", fakeOK, "+OK fake STAT", "+OK fake LIST", "+OK fake QUIT")
	c.ExpectClosed()
	e.backend.expectReceived(t, anyXCLIENT, "USER bob", "PASS secret", "STAT", "LIST", "QUIT")
}

// TestBackendLingering: what the backend sent right after its +OK, in the
// same write, reaches the client.
func TestBackendLingering(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.backend.afterLogin = "+OK early\r\n" })
	c := e.connect()
	c.login("bob", "secret", fakeOK)
	c.Expect("+OK early")
	c.Do("NOOP", "+OK fake NOOP")
}

// TestXCLIENT: the backend gets the client's address with XCLIENT before
// the login when its greeting offers it, unless the passdb says
// proxy_not_trusted.
func TestXCLIENT(t *testing.T) {
	t.Parallel()
	t.Run("forwarded", func(t *testing.T) {
		t.Parallel()
		e := start(t, func(s *setup) { s.listener.AllowPlaintext = true })
		c := e.dial("127.0.0.2")
		c.Expect(greeting)
		c.login("bob", "secret", fakeOK)
		e.backend.expectReceived(t, xclientLine("127.0.0.2", localPort(c), 4), "USER bob", "PASS secret")
	})
	t.Run("proxy_not_trusted", func(t *testing.T) {
		t.Parallel()
		e := start(t, withArgs("proxy=y nopassword=y proxy_not_trusted"))
		e.connect().login("bob", "secret", fakeOK)
		e.backend.expectReceived(t, "USER bob", "PASS secret")
	})
	t.Run("backend without XCLIENT", func(t *testing.T) {
		t.Parallel()
		// Dovecot greets an untrusted peer without the code.
		e := start(t, func(s *setup) { s.backend.greeting = "+OK Dovecot ready." })
		e.connect().login("bob", "secret", fakeOK)
		e.backend.expectReceived(t, "USER bob", "PASS secret")
	})
	t.Run("greeting code in lower case", func(t *testing.T) {
		t.Parallel()
		e := start(t, func(s *setup) { s.backend.greeting = "+OK [xclient] ready." })
		e.connect().login("bob", "secret", fakeOK)
		e.backend.expectReceived(t, anyXCLIENT, "USER bob", "PASS secret")
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		e := start(t, func(s *setup) { s.backend.xclient = "-ERR Invalid parameters" })
		c := e.connect()
		c.Do("USER bob", "+OK")
		c.Do("PASS secret", internalError)
		// USER was pipelined with XCLIENT, PASS never sent.
		e.backend.expectReceived(t, anyXCLIENT, "USER bob")
	})
}

// TestXCLIENTExact: the whole XCLIENT line, with a forwarded session id.
func TestXCLIENTExact(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.1/32") })
	c := e.dial("")
	c.Expect("+OK [XCLIENT] maildirector ready.")
	c.Do("XCLIENT ADDR=192.0.2.9 PORT=4321 SESSION=sess-42 TTL=3", "+OK Updated")
	c.login("bob", "secret", fakeOK)
	e.backend.expectReceived(t, "XCLIENT ADDR=192.0.2.9 PORT=4321 SESSION=sess-42 TTL=2", "USER bob", "PASS secret")
}

// TestTrustedXCLIENT: a trusted peer may forward the real client with
// XCLIENT; the passdb, the backend and the registry see it. An untrusted
// one is ignored, as Dovecot does.
func TestTrustedXCLIENT(t *testing.T) {
	t.Parallel()
	for _, trusted := range []bool{true, false} {
		t.Run("trusted="+strconv.FormatBool(trusted), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var seen auth.Request
			e := start(t, func(s *setup) {
				if trusted {
					s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.1/32")
				}
				s.pipeline.Passdb = gatewaytest.PassdbFunc(func(_ context.Context, r *auth.Request) (auth.Result, error) {
					mu.Lock()
					seen = *r
					mu.Unlock()
					return auth.Result{Status: auth.StatusOK}, nil
				})
			})
			c := e.dial("")
			c.Expect("+OK ...")
			if trusted {
				c.Do("XCLIENT ADDR=2001:db8::9 PORT=4321 SESSION=sess-42 TTL=3 FORWARD=eA==", "+OK Updated")
			} else {
				c.Do("XCLIENT ADDR=2001:db8::9 PORT=4321 SESSION=sess-42 TTL=3", "+OK You are not from trusted IP - ignoring")
			}
			c.login("bob", "secret", fakeOK)
			mu.Lock()
			defer mu.Unlock()
			if trusted {
				e.backend.expectReceived(t, "XCLIENT ADDR=2001:db8::9 PORT=4321 SESSION=sess-42 TTL=2", "USER bob", "PASS secret")
				if seen.Remote.String() != "[2001:db8::9]:4321" || seen.Session != "sess-42" {
					t.Fatalf("passdb saw remote %v session %q", seen.Remote, seen.Session)
				}
				if s := e.server.Registry.List(); len(s) != 1 || s[0].Remote.String() != "[2001:db8::9]:4321" || s[0].ID != "sess-42" {
					t.Fatalf("registry %+v", s)
				}
			} else {
				e.backend.expectReceived(t, xclientLine("127.0.0.1", localPort(c), 4), "USER bob", "PASS secret")
				if seen.Remote.Addr().String() != "127.0.0.1" {
					t.Fatalf("passdb saw remote %v", seen.Remote)
				}
			}
			if !seen.Secured || seen.TLS || seen.Service != "pop3" || seen.Mech != "" || seen.User != "bob" || seen.Password != "secret" {
				t.Fatalf("passdb request %+v", seen)
			}
		})
	}
}

// TestXCLIENTParameters: invalid attributes are refused whole and counted;
// ADDR alone keeps the port; TTL never goes up.
func TestXCLIENTParameters(t *testing.T) {
	t.Parallel()
	trusted := func(s *setup) { s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.0/8") }
	for _, args := range []string{"ADDR=x", "PORT=65536", "PORT=-1", "TTL=x", "TTL=-1", "SESSION=", "SESSION=" + strings.Repeat("x", 65), "SESSION=a\x01b",
		"ADDR=192.0.2.9  PORT=1", "ADDR=192.0.2.9 "} {
		t.Run(args, func(t *testing.T) {
			t.Parallel()
			e := start(t, trusted)
			c := e.dial("")
			c.Expect("+OK [XCLIENT] ...")
			c.Do("XCLIENT "+args, "-ERR Invalid parameters")
			c.login("bob", "secret", fakeOK)
			e.backend.expectReceived(t, xclientLine("127.0.0.1", localPort(c), 4), "USER bob", "PASS secret")
		})
	}
	t.Run("ADDR alone, TTL above ours", func(t *testing.T) {
		t.Parallel()
		e := start(t, trusted)
		c := e.dial("")
		c.Expect("+OK [XCLIENT] ...")
		c.Do("xclient addr=192.0.2.9 ttl=99 x-unknown=1", "+OK Updated")
		c.login("bob", "secret", fakeOK)
		e.backend.expectReceived(t, xclientLine("192.0.2.9", localPort(c), 4), "USER bob", "PASS secret")
	})
	t.Run("bare XCLIENT changes nothing", func(t *testing.T) {
		t.Parallel()
		e := start(t, trusted)
		c := e.dial("")
		c.Expect("+OK [XCLIENT] ...")
		c.Do("XCLIENT", "+OK Updated")
		c.login("bob", "secret", fakeOK)
		e.backend.expectReceived(t, xclientLine("127.0.0.1", localPort(c), 4), "USER bob", "PASS secret")
	})
}

// TestProxyTTL: a trusted peer with one hop left is a proxy loop.
func TestProxyTTL(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.0/8") })
	c := e.dial("")
	c.Expect("+OK [XCLIENT] ...")
	c.Do("XCLIENT TTL=1", "+OK Updated")
	c.login("bob", "secret", internalError)
	e.backend.expectUntouched(t)
}

// TestPassdbFields: the fields that change the backend login.
func TestPassdbFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, args, user string
		backend          []string
	}{
		// Dovecot's pop3-proxy: AUTH PLAIN with an initial response,
		// authzid = user, authcid = master.
		{"master", "proxy=y nopassword=y master=admin pass=mpw", "bob",
			[]string{anyXCLIENT, "AUTH PLAIN " + b64("bob\x00admin\x00mpw")}},
		{"pass", "proxy=y nopassword=y pass=other", "bob",
			[]string{anyXCLIENT, "USER bob", "PASS other"}},
		{"destuser", "proxy=y nopassword=y destuser=%Ln", "Bob@Example.COM",
			[]string{anyXCLIENT, "USER bob", "PASS secret"}},
		{"user", "proxy=y nopassword=y user=carol", "bob",
			[]string{anyXCLIENT, "USER carol", "PASS secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, withArgs(tc.args))
			e.connect().login(tc.user, "secret", fakeOK)
			e.backend.expectReceived(t, tc.backend...)
		})
	}
}

// TestMasterLoginRefused: the backend's refusal of a master login is a
// failed login.
func TestMasterLoginRefused(t *testing.T) {
	t.Parallel()
	e := start(t, withArgs("proxy=y nopassword=y master=admin pass=wrong"))
	c := e.connect()
	c.login("bob", "secret", authFailed)
	e.backend.expectReceived(t, anyXCLIENT, "AUTH PLAIN "+b64("bob\x00admin\x00wrong"))
}

// TestPinnedHost: host and port from the passdb bypass the director and
// the default port (which here leads nowhere).
func TestPinnedHost(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.pipeline.Passdb = gatewaytest.StaticChain(t, "proxy=y nopassword=y host=127.0.0.1 port="+strconv.Itoa(s.backend.port()))
		s.pipeline.Ports["pop3"] = gatewaytest.ClosedPort(t)
	})
	e.connect().login("bob", "secret", fakeOK)
	e.backend.expectReceived(t, anyXCLIENT, "USER bob", "PASS secret")
}
