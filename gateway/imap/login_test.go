// SPDX-License-Identifier: Apache-2.0

package imap

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

const anyID = `~^I ID \(`

// TestLoginArguments checks how LOGIN's user and password are read from
// the client and written to the backend, byte for byte.
func TestLoginArguments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		talk    func(c *client)
		backend string // the backend's LOGIN command
	}{
		{"atom", func(c *client) {
			c.Do("a LOGIN bob secret", "a "+fakeOK)
		}, `L LOGIN "bob" "secret"`},
		// auth_username_format %Lu: the backend gets the name the passdb
		// chain settled on, as Dovecot's proxy sends it.
		{"lower case command", func(c *client) {
			c.Do("a login Bob Secret", "a "+fakeOK)
		}, `L LOGIN "bob" "Secret"`},
		{"quoted with escapes", func(c *client) {
			c.Do(`a LOGIN "us\"er" "p\\w d"`, "a "+fakeOK)
		}, `L LOGIN "us\"er" "p\\w d"`},
		{"empty quoted password", func(c *client) {
			c.Do(`a LOGIN bob ""`, "a "+fakeOK)
		}, `L LOGIN "bob" ""`},
		{"synchronizing literals", func(c *client) {
			c.Do("a LOGIN {3}", "+ OK")
			c.Do("bob {8}", "+ OK")
			c.Do(`se"c\ret`, "a "+fakeOK)
		}, `L LOGIN "bob" "se\"c\\ret"`},
		{"non-synchronizing literals", func(c *client) {
			// No "+ OK" may come: the next line read is the tagged reply.
			c.Write("a LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n")
			c.Expect("a " + fakeOK)
		}, `L LOGIN "bob" "secret"`},
		{"empty literal", func(c *client) {
			c.Write("a LOGIN bob {0+}\r\n\r\n")
			c.Expect("a " + fakeOK)
		}, `L LOGIN "bob" ""`},
		{"8-bit user goes as a literal", func(c *client) {
			c.Write("a LOGIN {6+}\r\nbj\xc3\xb6rn secret\r\n")
			c.Expect("a " + fakeOK)
		}, "L LOGIN {6+}\r\nbj\xc3\xb6rn \"secret\""},
		{"CRLF in a literal password", func(c *client) {
			c.Write("a LOGIN bob {4+}\r\np\r\nw\r\n")
			c.Expect("a " + fakeOK)
		}, "L LOGIN \"bob\" {4+}\r\np\r\nw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t)
			tc.talk(e.connect())
			e.backend.expectReceived(t, anyID, tc.backend)
		})
	}
}

// TestLoginWithoutLiteralPlus: a backend without LITERAL+ (and without ID)
// gets a synchronizing literal and its continuation is awaited.
func TestLoginWithoutLiteralPlus(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.backend.greeting = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake" })
	c := e.connect()
	c.Write("a LOGIN bob {7+}\r\np\xc3\xa4sswd\r\n")
	c.Expect("a " + fakeOK)
	e.backend.expectReceived(t, "L LOGIN \"bob\" {7}\r\np\xc3\xa4sswd")
}

// TestLoginRelay: the client's OK is the backend's, with the client's tag;
// then bytes flow both ways and the session is registered meanwhile.
func TestLoginRelay(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("a1 LOGIN bob secret", "a1 OK [CAPABILITY IMAP4rev1 IDLE NAMESPACE] Logged in")
	c.Do("a2 SELECT INBOX", "a2 OK fake SELECT")
	c.Do("a3 NOOP", "a3 OK fake NOOP")
	e.backend.expectReceived(t, anyID, `L LOGIN "bob" "secret"`, "a2 SELECT INBOX", "a3 NOOP")
	reg := e.server.Registry
	if n := reg.Count(); n != 1 {
		t.Fatalf("registry holds %d sessions, want 1", n)
	}
	s := reg.List()[0]
	if s.User != "bob" || s.Service != "imap" || s.Backend != "127.0.0.1:"+strconv.Itoa(e.backend.port()) ||
		s.Remote != netip.MustParseAddrPort(c.Conn.LocalAddr().String()) {
		t.Fatalf("registered session %+v", s)
	}
	c.Do("a4 LOGOUT", "* BYE fake", "a4 OK fake LOGOUT")
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

// TestLoginPipelined: a command sent with LOGIN, in the same write, reaches
// the backend after the login.
func TestLoginPipelined(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Write("a1 LOGIN bob secret\r\na2 SELECT INBOX\r\na3 NOOP\r\n")
	c.Expect("a1 "+fakeOK, "a2 OK fake SELECT", "a3 OK fake NOOP")
	e.backend.expectReceived(t, anyID, `L LOGIN "bob" "secret"`, "a2 SELECT INBOX", "a3 NOOP")
}

// TestBackendLingering: what the backend sent right after its OK, in the
// same write, reaches the client.
func TestBackendLingering(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.backend.afterLogin = "* 3 EXISTS\r\n* 1 RECENT\r\n" })
	c := e.connect()
	c.Do("a1 LOGIN bob secret", "a1 "+fakeOK, "* 3 EXISTS", "* 1 RECENT")
	c.Do("a2 NOOP", "a2 OK fake NOOP")
}

// TestForwardedID: the backend gets the client's details with ID before
// the login, unless the passdb says proxy_not_trusted or the backend has
// no ID capability.
func TestForwardedID(t *testing.T) {
	t.Parallel()
	t.Run("forwarded", func(t *testing.T) {
		t.Parallel()
		e := start(t)
		c := e.connect()
		c.Do("a LOGIN bob secret", "a "+fakeOK)
		e.backend.expectReceived(t, "~"+idLine("127.0.0.1", localPort(c), e.addr, 4).String(), `L LOGIN "bob" "secret"`)
	})
	t.Run("proxy_not_trusted", func(t *testing.T) {
		t.Parallel()
		e := start(t, withArgs("proxy=y nopassword=y proxy_not_trusted"))
		e.connect().Do("a LOGIN bob secret", "a "+fakeOK)
		e.backend.expectReceived(t, `L LOGIN "bob" "secret"`)
	})
	t.Run("backend without ID", func(t *testing.T) {
		t.Parallel()
		e := start(t, func(s *setup) { s.backend.greeting = "* OK [CAPABILITY IMAP4rev1 LITERAL+] fake" })
		e.connect().Do("a LOGIN bob secret", "a "+fakeOK)
		e.backend.expectReceived(t, `L LOGIN "bob" "secret"`)
	})
	t.Run("greeting without capabilities", func(t *testing.T) {
		t.Parallel()
		e := start(t, func(s *setup) { s.backend.greeting = "* OK fake ready" })
		e.connect().Do("a LOGIN bob secret", "a "+fakeOK)
		e.backend.expectReceived(t, "C CAPABILITY", anyID, `L LOGIN "bob" "secret"`)
	})
}

// TestTrustedID: a trusted peer may forward the real client with ID; the
// backend, the passdb and the relay see it. An untrusted one may not.
func TestTrustedID(t *testing.T) {
	t.Parallel()
	const forward = `a1 ID ("x-originating-ip" "192.0.2.9" "x-originating-port" "4321" ` +
		`"X-Connected-IP" "198.51.100.1" "x-connected-port" "993" "x-session-id" "sess-42" "x-proxy-ttl" "3")`
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
			c := e.connect()
			c.Do(forward, `* ID ("name" "maildirector")`, "a1 OK ID completed.")
			c.Do("a2 LOGIN bob secret", "a2 "+fakeOK)
			mu.Lock()
			defer mu.Unlock()
			if trusted {
				e.backend.expectReceived(t,
					`I ID ("x-session-id" "sess-42" "x-originating-ip" "192.0.2.9" "x-originating-port" "4321" `+
						`"x-connected-ip" "198.51.100.1" "x-connected-port" "993" "x-proxy-ttl" "2")`,
					`L LOGIN "bob" "secret"`)
				if seen.Remote.String() != "192.0.2.9:4321" || seen.Local.String() != "198.51.100.1:993" || seen.Session != "sess-42" {
					t.Fatalf("passdb saw remote %v local %v session %q", seen.Remote, seen.Local, seen.Session)
				}
			} else {
				e.backend.expectReceived(t, "~"+idLine("127.0.0.1", localPort(c), e.addr, 4).String(), `L LOGIN "bob" "secret"`)
				if seen.Remote.Addr().String() != "127.0.0.1" {
					t.Fatalf("passdb saw remote %v", seen.Remote)
				}
			}
			if !seen.Secured || seen.TLS || seen.Service != "imap" || seen.Mech != "" || seen.User != "bob" || seen.Password != "secret" {
				t.Fatalf("passdb request %+v", seen)
			}
		})
	}
}

// TestProxyTTL: a trusted peer with one hop left is a proxy loop.
func TestProxyTTL(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.0/8") })
	c := e.connect()
	c.Do(`a1 ID ("x-proxy-ttl" "1")`, `* ID ("name" "maildirector")`, "a1 OK ID completed.")
	c.Do("a2 LOGIN bob secret", "a2 "+serverBug)
	if n := e.backend.connections(); n != 0 {
		t.Fatalf("backend got %d connections, want 0", n)
	}
	// A TTL above our own is ignored.
	c2 := e.connect()
	c2.Do(`b1 ID ("x-proxy-ttl" "99")`, `* ID ("name" "maildirector")`, "b1 OK ID completed.")
	c2.Do("b2 LOGIN bob secret", "b2 "+fakeOK)
	e.backend.expectReceived(t, `~"x-proxy-ttl" "4"\)$`, `L LOGIN "bob" "secret"`)
}

// TestPassdbFields: the fields that change the backend login.
func TestPassdbFields(t *testing.T) {
	t.Parallel()
	plainIR := "L AUTHENTICATE PLAIN " + b64("bob\x00admin\x00mpw")
	for _, tc := range []struct {
		name, args, greeting, login string
		backend                     []string
	}{
		{"master", "proxy=y nopassword=y master=admin pass=mpw", "", "a LOGIN bob secret",
			[]string{anyID, plainIR}},
		{"master without SASL-IR", "proxy=y nopassword=y master=admin pass=mpw",
			"* OK [CAPABILITY IMAP4rev1 ID LITERAL+ AUTH=PLAIN] fake", "a LOGIN bob secret",
			[]string{anyID, "L AUTHENTICATE PLAIN", b64("bob\x00admin\x00mpw")}},
		{"pass", "proxy=y nopassword=y pass=other", "", "a LOGIN bob secret",
			[]string{anyID, `L LOGIN "bob" "other"`}},
		{"destuser", "proxy=y nopassword=y destuser=%Ln", "", "a LOGIN Bob@Example.COM secret",
			[]string{anyID, `L LOGIN "bob" "secret"`}},
		{"user", "proxy=y nopassword=y user=carol", "", "a LOGIN bob secret",
			[]string{anyID, `L LOGIN "carol" "secret"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, func(s *setup) {
				s.pipeline.Passdb = gatewaytest.StaticChain(t, tc.args)
				if tc.greeting != "" {
					s.backend.greeting = tc.greeting
				}
			})
			e.connect().Do(tc.login, "a "+fakeOK)
			e.backend.expectReceived(t, tc.backend...)
		})
	}
}

// TestPinnedHost: host and port from the passdb bypass the director and
// the default port (which here leads nowhere).
func TestPinnedHost(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.pipeline.Passdb = gatewaytest.StaticChain(t, "proxy=y nopassword=y host=127.0.0.1 port="+strconv.Itoa(s.backend.port()))
		s.pipeline.Ports["imap"] = gatewaytest.ClosedPort(t)
	})
	e.connect().Do("a LOGIN bob secret", "a "+fakeOK)
	e.backend.expectReceived(t, anyID, `L LOGIN "bob" "secret"`)
}

// TestMasterNeedsPlain: a master-user login on a backend without
// AUTH=PLAIN is our configuration's fault.
func TestMasterNeedsPlain(t *testing.T) {
	t.Parallel()
	e := start(t, withArgs("proxy=y nopassword=y master=admin pass=mpw"), func(s *setup) {
		s.backend.greeting = "* OK [CAPABILITY IMAP4rev1 ID LITERAL+] fake"
	})
	c := e.connect()
	c.Do("a LOGIN bob secret", "a "+serverBug)
	c.Do("b NOOP", "b OK NOOP completed.")
}
