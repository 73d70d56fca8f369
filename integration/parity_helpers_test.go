// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// The wire-parity tests play one script of client lines against a real
// Dovecot 2.3 answering with its own login processes (imap-login,
// pop3-login, managesieve-login) and lmtp, and against the gateway in
// front of that same Dovecot, and compare the replies line by line.
//
// One Dovecot serves as both: clients reach it from addresses it does not
// trust (so that it refuses plaintext logins before STARTTLS, as the
// gateway does), while the gateway reaches it from 127.0.0.1, which it
// trusts (so that it takes the gateway's ID/XCLIENT forwarding). After a
// login both sides talk to the same Dovecot mail process, so the
// post-login replies agree too (IMAP's post-login capabilities are
// normalised all the same: they are the backend's, relayed).

// Addresses of the parity environment: neither is the client's, so that
// no client counts as local (secured) on either side.
const (
	parityDovecotIP = "127.0.0.41"
	parityGatewayIP = "127.0.0.42"
)

// parityUser is the one account of the parity Dovecot.
const (
	parityUser = "parity@example.com"
	parityPass = "pw-parity"
)

// difference marks a step where the gateway answers otherwise than
// Dovecot, on purpose or not: why says which, and why. ours is the
// gateway's reply (normalised).
//
// A deliberate difference (open false) pins ours: a change on either
// side fails the row. An open one is a wrong answer someone is to fix
// (why names who): the row logs how it stands and never fails, so that
// the fix, when it lands, is seen and the mark dropped.
type difference struct {
	why  string
	ours []string
	open bool
}

// step is one thing the client sends ("" for nothing: the greeting) and
// the replies it reads. send gets CRLF appended; it may hold more lines
// (literals, LITERAL+). replies is the number of replies to read where a
// protocol cannot tell by itself (LMTP after DATA: one per recipient).
type step struct {
	send     string
	blank    bool // send an empty line
	starttls bool // after a positive reply, do the TLS handshake
	// silent: the server is expected to wait for more (a synchronising
	// literal where no continuation is sent); listen only briefly.
	silent  bool
	replies int
	differ  *difference
}

// script is one table row: its steps, played on a fresh connection.
type script struct {
	name  string
	steps []step
}

// replyReader reads the replies to one step. sent is what the step sent
// ("" for the greeting).
type replyReader func(r *parityConn, sent string, s step) []string

// protocol is how one protocol's scripts are played and compared.
type protocol struct {
	name string
	read replyReader
	// afterTLS reads what the server sends by itself after the TLS
	// handshake (ManageSieve: the capabilities again); nil for nothing.
	afterTLS func(r *parityConn) []string
	// normalise rewrites what is not comparable (host names, session
	// ids, the mail process's own details): applied to both sides.
	normalise []rewrite
}

// rewrite replaces every match of re by with.
type rewrite struct {
	re   *regexp.Regexp
	with string
}

func (p *protocol) norm(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		for _, rw := range p.normalise {
			l = rw.re.ReplaceAllString(l, rw.with)
		}
		out[i] = l
	}
	return out
}

// parityEnv is the Dovecot and the gateway in front of it.
type parityEnv struct {
	dovecot *harness.Dovecot
	gw      map[string]string // protocol name → the gateway's address
	roots   *x509.CertPool
}

// startParity starts the Dovecot (login-facing settings: TLS,
// disable_plaintext_auth = yes, plain and login mechanisms, 127.0.0.1
// trusted) and a gateway with a STARTTLS-capable listener per protocol
// and the same settings (default mechanisms, no allow_plaintext, no
// trusted networks). The gateway's passdb lets every name through: the
// Dovecot behind it is the one that checks the password, as it is for
// the direct clients. maxBad is the gateway's limits.max_bad_commands:
// Dovecot's login processes hang up after 3 invalid commands
// (CLIENT_MAX_BAD_COMMANDS), its lmtp after 10 (lib-smtp); the gateway
// has one limit for all, 10 by default.
func startParity(t *testing.T, maxBad int) *parityEnv {
	t.Helper()
	requireTools(t, "dovecot", "doveadm")
	dir := testDir(t)
	ca, err := harness.NewCA(dir, "parity-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue(dir, "parity", "localhost", parityDovecotIP, parityGatewayIP)
	if err != nil {
		t.Fatal(err)
	}
	e := startBackendsWith(t, []string{parityDovecotIP}, map[string]string{parityUser: parityPass}, func(o *harness.DovecotOptions) {
		o.SSLCert, o.SSLKey = cert, key
		o.TrustedNetworks = "127.0.0.1/32"
		// The harness allows plaintext everywhere; a login-facing
		// Dovecot refuses it on insecure connections (the later line
		// wins).
		o.ExtraConf = "disable_plaintext_auth = yes\n"
	})
	pe := &parityEnv{dovecot: e.backends[0], gw: map[string]string{}, roots: x509.NewCertPool()}
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pe.roots.AppendCertsFromPEM(pem)
	var listeners strings.Builder
	for _, p := range []string{"imap", "pop3", "sieve", "lmtp"} {
		port, err := harness.FreePort(parityGatewayIP)
		if err != nil {
			t.Fatal(err)
		}
		pe.gw[p] = net.JoinHostPort(parityGatewayIP, strconv.Itoa(port))
		fmt.Fprintf(&listeners, "  - {protocol: %s, address: %q}\n", p, pe.gw[p])
	}
	e.gwAddr = pe.gw["imap"]
	e.limits = fmt.Sprintf("{auth_failure_delay: 0s, auth_penalty_max: 0s, max_bad_commands: %d}", maxBad)
	e.startGatewayWith(t, listeners.String(), "proxy=y nopassword=y",
		fmt.Sprintf("tls: {cert: %q, key: %q}\nlmtp: {hostname: parity.test}\n", cert, key))
	return pe
}

// dovecotAddr is the Dovecot's own listener for protocol.
func (pe *parityEnv) dovecotAddr(protocol string) string {
	switch protocol {
	case "imap":
		return pe.dovecot.IMAPAddr()
	case "pop3":
		return pe.dovecot.POP3Addr()
	case "sieve":
		return pe.dovecot.SieveAddr()
	}
	return pe.dovecot.LMTPAddr()
}

// parityConn is one side's connection.
type parityConn struct {
	conn   net.Conn
	r      *bufio.Reader
	closed bool
	// greeted is set once the greeting has been read.
	greeted bool
	// tag is the IMAP tag of the command whose replies are awaited;
	// more is set while the server waits for the continuation of a
	// command (IMAP, POP3 and ManageSieve SASL, IMAP literals).
	tag  string
	more bool
}

// replyTimeout bounds the wait for one line: a server that says nothing
// shows as "<no reply>" rather than hanging the test.
const replyTimeout = 10 * time.Second

// line reads one reply line; "<closed>" when the server hung up,
// "<no reply>" when it said nothing in time. ok is false for both.
func (c *parityConn) line() (string, bool) {
	if c.closed {
		return "<closed>", false
	}
	c.conn.SetReadDeadline(time.Now().Add(replyTimeout))
	s, err := c.r.ReadString('\n')
	var ne net.Error
	switch {
	case err == nil:
		if !strings.HasSuffix(s, "\r\n") {
			return fmt.Sprintf("<bare LF: %q>", s), true
		}
		return strings.TrimSuffix(s, "\r\n"), true
	case errors.As(err, &ne) && ne.Timeout():
		if s != "" {
			return fmt.Sprintf("<partial %q>", s), false
		}
		return "<no reply>", false
	default:
		c.closed = true
		if s != "" {
			return fmt.Sprintf("<partial %q, then closed>", s), false
		}
		return "<closed>", false
	}
}

// quiet reports whether the server sends nothing more within a short
// while: the end of replies no line marks as the last.
func (c *parityConn) quiet() bool {
	if c.closed {
		return true
	}
	c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.r.Peek(1)
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rest reads until the server closes (after a BYE), at most a few lines.
func (c *parityConn) rest() []string {
	var out []string
	for i := 0; i < 5; i++ {
		l, ok := c.line()
		out = append(out, l)
		if !ok {
			break
		}
	}
	return out
}

// play runs sc on a new connection to addr from the address from, and
// returns each step's replies.
func (p *protocol) play(t *testing.T, addr, from string, roots *x509.CertPool, sc script) [][]string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	c := &parityConn{conn: conn, r: bufio.NewReader(conn)}
	defer func() { c.conn.Close() }()
	var out [][]string
	for _, s := range sc.steps {
		if (s.send != "" || s.blank) && !c.closed {
			c.conn.SetWriteDeadline(time.Now().Add(replyTimeout))
			if _, err := io.WriteString(c.conn, s.send+"\r\n"); err != nil {
				out = append(out, []string{"<write failed>"})
				c.closed = true
				continue
			}
		}
		var replies []string
		if s.silent && c.quiet() {
			replies = []string{"<no reply>"}
		} else {
			replies = p.read(c, s.send, s)
		}
		if s.starttls && len(replies) > 0 && !negative(replies[len(replies)-1]) && !c.closed {
			tc := tls.Client(c.conn, &tls.Config{RootCAs: roots, ServerName: "localhost"})
			tc.SetDeadline(time.Now().Add(replyTimeout))
			if err := tc.Handshake(); err != nil {
				replies = append(replies, "<TLS handshake: "+err.Error()+">")
				c.closed = true
			} else {
				tc.SetDeadline(time.Time{})
				c.conn, c.r = tc, bufio.NewReader(tc)
				if p.afterTLS != nil {
					replies = append(replies, p.afterTLS(c)...)
				}
			}
		}
		out = append(out, replies)
	}
	return out
}

// negative reports whether a final reply refused the command.
func negative(l string) bool {
	for _, p := range []string{"-ERR", "NO", "BAD", "BYE", "4", "5", "<"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	if f := strings.Fields(l); len(f) > 1 && (f[1] == "NO" || f[1] == "BAD") {
		return true
	}
	return false
}

// compare plays every script against Dovecot and the gateway, each play
// from an address of its own, and compares the normalised replies step
// by step. Own addresses: Dovecot's auth penalty counts failures per
// client address, and the gateway forwards the client's address to it,
// so that one play's wrong passwords would delay the next one's answers.
func (pe *parityEnv) compare(t *testing.T, p *protocol, scripts []script, subnet int) {
	for i, sc := range scripts {
		direct := fmt.Sprintf("127.0.%d.%d", subnet, 10+i)
		proxied := fmt.Sprintf("127.0.%d.%d", subnet+100, 10+i)
		t.Run(sc.name, func(t *testing.T) {
			theirs := p.play(t, pe.dovecotAddr(p.name), direct, pe.roots, sc)
			ours := p.play(t, pe.gw[p.name], proxied, pe.roots, sc)
			var b strings.Builder
			for j, s := range sc.steps {
				d, g := p.norm(theirs[j]), p.norm(ours[j])
				fmt.Fprintf(&b, "C: %s\n", shorten(s.send))
				for _, l := range d {
					fmt.Fprintf(&b, "   dovecot: %s\n", shorten(l))
				}
				for _, l := range g {
					fmt.Fprintf(&b, "   gateway: %s\n", shorten(l))
				}
				pe.judge(t, &b, j, s, d, g)
			}
			t.Logf("transcript:\n%s", b.String())
		})
	}
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// shorten keeps long lines (the 30 KiB ID) readable in the logs.
func shorten(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "⏎")
	if len(s) > 160 {
		return fmt.Sprintf("%s…(%d bytes)…%s", s[:100], len(s), s[len(s)-40:])
	}
	return s
}

// judge compares one step's normalised replies (d: Dovecot's, g: the
// gateway's) as its mark says, and notes the verdict in the transcript.
func (pe *parityEnv) judge(t *testing.T, b *strings.Builder, j int, s step, d, g []string) {
	t.Helper()
	what := fmt.Sprintf("step %d (%s)", j, shorten(s.send))
	diff := s.differ
	switch {
	case diff == nil:
		if !equalLines(d, g) {
			t.Errorf("%s: the gateway answers otherwise than Dovecot:\n dovecot: %q\n gateway: %q", what, d, g)
		}
	case diff.open && equalLines(d, g):
		t.Logf("%s: the open difference (%s) is gone: drop the mark", what, diff.why)
		fmt.Fprintf(b, "   (was an open difference: %s)\n", diff.why)
	case diff.open:
		if !equalLines(g, diff.ours) {
			t.Logf("%s: open difference (%s); the gateway's answer changed to %q", what, diff.why, g)
		}
		fmt.Fprintf(b, "   (open difference: %s)\n", diff.why)
	case equalLines(d, g):
		t.Errorf("%s: marked as a deliberate difference (%s), but Dovecot now answers the same: drop the mark", what, diff.why)
	case !equalLines(g, diff.ours):
		t.Errorf("%s, a deliberate difference (%s): the gateway's answer changed:\n now: %q\n was: %q\n dovecot: %q", what, diff.why, g, diff.ours, d)
	default:
		fmt.Fprintf(b, "   (differs: %s)\n", diff.why)
	}
}
