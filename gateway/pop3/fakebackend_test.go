// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// fakeBackend is a scripted POP3 backend in the manner of Dovecot's
// pop3-login. It records every line the gateway sends, answers STLS,
// XCLIENT, CAPA, USER, PASS and AUTH PLAIN, and once logged in answers
// every command "+OK fake <KEYWORD>".
type fakeBackend struct {
	t  testing.TB
	ln net.Listener

	// Set before start returns, read by the connections.
	greeting string // first line sent
	// tlsConfig offers STLS; with implicitTLS the handshake comes first.
	tlsConfig   *tls.Config
	implicitTLS bool
	stlsAnswer  string // reply to STLS when tlsConfig is nil
	xclient     string // reply to XCLIENT
	userAnswer  string // reply to USER
	// answer is the reply to a login (PASS, AUTH PLAIN); "" hangs up. The
	// default accepts every password but "wrong".
	answer func(user, pass, authzid string) string
	// afterLogin is sent in the same write as the login's +OK.
	afterLogin string
	// mute: after the greeting, lines are recorded and never answered.
	mute bool

	mu    sync.Mutex
	cmds  []string
	conns int
}

func newFakeBackend(t testing.TB) *fakeBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBackend{t: t, ln: ln, greeting: fakeGreeting, stlsAnswer: "-ERR TLS support isn't enabled.",
		xclient: "+OK Updated", userAnswer: "+OK"}
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

// received returns the lines recorded so far.
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

func (b *fakeBackend) serve(c net.Conn) {
	defer func() { c.Close() }()
	if b.implicitTLS {
		c = tls.Server(c, b.tlsConfig)
	}
	r := bufio.NewReader(c)
	reply := func(lines ...string) {
		io.WriteString(c, strings.Join(lines, "\r\n")+"\r\n")
	}
	readLine := func() (string, bool) {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", false
		}
		l = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
		b.record(l)
		return l, true
	}
	reply(b.greeting)
	loggedIn := false
	var user string
	for {
		line, ok := readLine()
		if !ok {
			return
		}
		if b.mute {
			continue
		}
		keyword, args, _ := strings.Cut(line, " ")
		keyword = strings.ToUpper(keyword)
		if loggedIn {
			if keyword == "QUIT" {
				reply("+OK fake QUIT")
				return
			}
			reply("+OK fake " + keyword)
			continue
		}
		var pass, authz string
		switch keyword {
		case "CAPA":
			reply("+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "USER", "SASL PLAIN LOGIN", ".")
			continue
		case "STLS":
			if b.tlsConfig == nil || b.implicitTLS {
				reply(b.stlsAnswer)
				continue
			}
			reply("+OK Begin TLS negotiation now.")
			c = tls.Server(c, b.tlsConfig)
			r = bufio.NewReader(c)
			continue
		case "XCLIENT":
			reply(b.xclient)
			continue
		case "USER":
			user = args
			reply(b.userAnswer)
			continue
		case "PASS":
			pass = args
		case "AUTH":
			mech, ir, hasIR := strings.Cut(args, " ")
			if strings.ToUpper(mech) != "PLAIN" {
				reply("-ERR Unsupported authentication mechanism.")
				continue
			}
			if !hasIR {
				reply("+ ")
				if ir, ok = readLine(); !ok {
					return
				}
			}
			dec, _ := base64.StdEncoding.DecodeString(ir)
			parts := strings.Split(string(dec), "\x00")
			if len(parts) != 3 {
				reply("-ERR fake: broken PLAIN")
				continue
			}
			authz, user, pass = parts[0], parts[1], parts[2]
		default:
			reply(unknownCommand)
			continue
		}
		ans := b.answer(user, pass, authz)
		if ans == "" {
			return
		}
		if strings.HasPrefix(ans, "+OK") {
			loggedIn = true
			io.WriteString(c, ans+"\r\n"+b.afterLogin)
			continue
		}
		reply(ans)
	}
}

// expectReceived asserts the backend's lines, exactly and in order; a
// want starting with "~" is a regular expression.
func (b *fakeBackend) expectReceived(t testing.TB, want ...string) {
	t.Helper()
	got := b.received()
	if len(got) != len(want) {
		t.Fatalf("backend received %d lines %q, want %d %q", len(got), got, len(want), want)
	}
	for i, w := range want {
		if re, ok := strings.CutPrefix(w, "~"); ok {
			if !regexp.MustCompile(re).MatchString(got[i]) {
				t.Fatalf("backend line %d: got %q, want match %q", i, got[i], re)
			}
		} else if got[i] != w {
			t.Fatalf("backend line %d: got %q, want %q", i, got[i], w)
		}
	}
}

func (b *fakeBackend) expectUntouched(t testing.TB) {
	t.Helper()
	if n := b.connections(); n != 0 {
		t.Fatalf("backend got %d connections, want 0", n)
	}
}
