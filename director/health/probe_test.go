// SPDX-License-Identifier: Apache-2.0

package health

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/internal/testtls"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// probeOnce runs one check of a fake backend on 127.0.0.1.
func probeOnce(t *testing.T, cfg Config, handler func(*fakeConn)) (string, error) {
	t.Helper()
	port := 0
	if handler != nil {
		b := newFakeBackend(t, "127.0.0.1", handler)
		port = b.port()
	} else {
		// A port nothing listens on: a listener opened and closed.
		b := newFakeBackend(t, "127.0.0.1", silent)
		port = b.port()
		b.stop()
	}
	cfg.Port = func(string) int { return port }
	cfg.Hosts, cfg.Elector = newFakeHosts(), &fakeElector{}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
		cfg.Interval = time.Second
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c.probe(context.Background(), "127.0.0.1")
}

func TestProbes(t *testing.T) {
	srvTLS, cliTLS := testtls.Configs(t)
	login := func(proto string) Config {
		return Config{Check: CheckLogin, Protocol: proto, LoginUser: testUser, LoginPassword: testPass}
	}
	wrongPass := func(c Config) Config { c.LoginPassword = "wrong"; return c }
	withTLS := func(c Config, mode string) Config { c.TLS, c.TLSConfig = mode, cliTLS; return c }
	imapOK := imapBackend("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.", srvTLS)
	implicitTLS := func(h func(*fakeConn)) func(*fakeConn) {
		return func(c *fakeConn) { c.startTLS(srvTLS); h(c) }
	}

	for _, tc := range []struct {
		name    string
		cfg     Config
		handler func(*fakeConn)
		fail    string // "" = healthy; else a part of the error
		note    string // a part of the note
	}{
		{name: "tcp up", cfg: Config{Check: CheckTCP}, handler: silent},
		{name: "tcp refused", cfg: Config{Check: CheckTCP}, fail: "connect: dial tcp"},
		{name: "tcp implicit TLS", cfg: withTLS(Config{Check: CheckTCP}, TLSImplicit), handler: implicitTLS(silent)},
		{name: "tcp implicit TLS, plaintext server", cfg: withTLS(Config{Check: CheckTCP}, TLSImplicit), handler: imapOK, fail: "TLS"},

		{name: "imap banner", cfg: Config{}, handler: imapOK},
		{name: "imap banner BYE", cfg: Config{}, handler: imapBackend("* BYE Too many connections", nil), fail: `greeting: want * OK, got "* BYE Too many connections"`},
		{name: "imap banner silent", cfg: Config{Timeout: 200 * time.Millisecond, Interval: time.Second}, handler: silent, fail: "greeting: no answer within 200ms"},
		{name: "imap banner refused", cfg: Config{}, fail: "connect"},
		{name: "imap login", cfg: login(IMAP), handler: imapOK},
		{name: "imap login NO", cfg: wrongPass(login(IMAP)), handler: imapOK, fail: `LOGIN as health@example.org: "NO [AUTHENTICATIONFAILED]`},
		{name: "imap LOGINDISABLED", cfg: login(IMAP), handler: imapBackend("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready.", nil), note: "LOGINDISABLED"},
		{name: "imap PRIVACYREQUIRED", cfg: login(IMAP), handler: func(c *fakeConn) {
			c.send("* OK ready.")
			tag, _, _ := strings.Cut(c.read(), " ")
			c.send(tag + " NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
			c.read()
		}, note: "login_trusted_networks"},
		{name: "imap starttls login", cfg: withTLS(login(IMAP), TLSStartTLS), handler: imapBackend("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready.", srvTLS)},
		{name: "imap implicit TLS login", cfg: withTLS(login(IMAP), TLSImplicit), handler: implicitTLS(imapOK)},
		{name: "imap untrusted certificate", cfg: withTLS(login(IMAP), TLSImplicit), handler: implicitTLS(imapOK), fail: "TLS"},
		{name: "imap login with a literal", cfg: login(IMAP), handler: func(c *fakeConn) {
			c.send("* OK ready.")
			tag, _, _ := strings.Cut(c.read(), " ")
			c.send("* ID {5}")
			c.Write([]byte("L OK \r\n"))
			c.send(tag + " OK Logged in")
			c.read()
		}},

		{name: "pop3 banner", cfg: Config{Protocol: POP3}, handler: pop3Backend(nil)},
		{name: "pop3 banner -ERR", cfg: Config{Protocol: POP3}, handler: func(c *fakeConn) { c.send("-ERR [SYS/TEMP] Max connections") }, fail: "greeting"},
		{name: "pop3 login", cfg: login(POP3), handler: pop3Backend(nil)},
		{name: "pop3 login -ERR", cfg: wrongPass(login(POP3)), handler: pop3Backend(nil), fail: `PASS for health@example.org: "-ERR [AUTH] Authentication failed."`},
		{name: "pop3 plaintext disallowed", cfg: login(POP3), handler: func(c *fakeConn) {
			c.send("+OK ready.")
			c.read()
			c.send("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")
			c.read()
		}, note: "POP3"},
		{name: "pop3 starttls login", cfg: withTLS(login(POP3), TLSStartTLS), handler: pop3Backend(srvTLS)},

		{name: "lmtp banner", cfg: Config{Protocol: LMTP}, handler: lmtpBackend(nil)},
		{name: "lmtp banner 421", cfg: Config{Protocol: LMTP}, handler: func(c *fakeConn) { c.send("421 4.3.2 Shutting down") }, fail: "greeting: want 220"},
		{name: "lmtp login", cfg: Config{Check: CheckLogin, Protocol: LMTP, LoginUser: testUser}, handler: lmtpBackend(nil)},
		{name: "lmtp unknown recipient", cfg: Config{Check: CheckLogin, Protocol: LMTP, LoginUser: "nobody@example.org"}, handler: lmtpBackend(nil), fail: "RCPT TO:<nobody@example.org>: want 250, got \"550"},
		{name: "lmtp starttls login", cfg: withTLS(Config{Check: CheckLogin, Protocol: LMTP, LoginUser: testUser}, TLSStartTLS), handler: lmtpBackend(srvTLS)},

		{name: "sieve banner", cfg: Config{Protocol: Sieve}, handler: sieveBackend("PLAIN LOGIN", nil)},
		{name: "sieve banner BYE", cfg: Config{Protocol: Sieve}, handler: func(c *fakeConn) { c.send(`"IMPLEMENTATION" "x"`, `BYE "Too many"`) }, fail: "greeting"},
		{name: "sieve login", cfg: login(Sieve), handler: sieveBackend("PLAIN LOGIN", nil)},
		{name: "sieve login NO", cfg: wrongPass(login(Sieve)), handler: sieveBackend("PLAIN LOGIN", nil), fail: `AUTHENTICATE as health@example.org: "NO \"Authentication failed.\""`},
		{name: "sieve no plaintext", cfg: login(Sieve), handler: sieveBackend("", nil), note: "ManageSieve SASL"},
		{name: "sieve starttls login", cfg: withTLS(login(Sieve), TLSStartTLS), handler: sieveBackend("", srvTLS)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if tc.name == "imap untrusted certificate" {
				cfg.TLSConfig = &tls.Config{} // the system roots do not know the test CA
			}
			note, err := probeOnce(t, cfg, tc.handler)
			switch {
			case tc.fail == "" && err != nil:
				t.Fatalf("want healthy, got %v", err)
			case tc.fail != "" && err == nil:
				t.Fatalf("want a failure with %q, got healthy", tc.fail)
			case tc.fail != "" && !strings.Contains(err.Error(), tc.fail):
				t.Fatalf("want a failure with %q, got %v", tc.fail, err)
			}
			if !strings.Contains(note, tc.note) || (tc.note == "") != (note == "") {
				t.Fatalf("want a note with %q, got %q", tc.note, note)
			}
		})
	}
}

// A cancelled context (leadership lost) ends a check at once.
func TestProbeCancelled(t *testing.T) {
	b := newFakeBackend(t, "127.0.0.1", silent)
	c, err := New(Config{Interval: 10 * time.Second, Timeout: 10 * time.Second, Port: func(string) int { return b.port() },
		Hosts: newFakeHosts(), Elector: &fakeElector{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = c.probe(ctx, "127.0.0.1")
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("probe after cancel: %v after %v", err, time.Since(start))
	}
}

func TestNewValidates(t *testing.T) {
	base := Config{Port: func(string) int { return 143 }, Hosts: newFakeHosts(), Elector: &fakeElector{}}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Timeout, c.Interval = 2*time.Second, time.Second }, "timeout"},
		{func(c *Config) { c.Check = "ping" }, "unknown check"},
		{func(c *Config) { c.Protocol = "smtp" }, "unknown protocol"},
		{func(c *Config) { c.Check = CheckLogin }, "login_user"},
		{func(c *Config) { c.Check, c.LoginUser = CheckLogin, "u" }, "login_password"},
		{func(c *Config) { c.Check, c.TLS = CheckTCP, TLSStartTLS }, "starttls"},
		{func(c *Config) { c.TLS = "yes" }, "TLS mode"},
		{func(c *Config) { c.Hosts = nil }, "no store"},
	} {
		cfg := base
		tc.mod(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error with %q, got %v", tc.want, err)
		}
	}
	lmtp := base
	lmtp.Check, lmtp.Protocol, lmtp.LoginUser = CheckLogin, LMTP, "u"
	if _, err := New(lmtp); err != nil {
		t.Errorf("LMTP login without password: %v", err)
	}
}
