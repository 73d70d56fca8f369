// SPDX-License-Identifier: Apache-2.0

package sieve

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

// fakeBackend is a scripted ManageSieve backend after Pigeonhole. It
// records every command the gateway sends (literal bytes inline) and
// every AUTHENTICATE client response line; answers CAPABILITY, XCLIENT,
// STARTTLS and AUTHENTICATE "PLAIN"; and once logged in answers every
// command `OK "fake <NAME>"`.
type fakeBackend struct {
	t  testing.TB
	ln net.Listener

	// Set before start returns, read by the connections.
	caps []string // capability lines, STARTTLS added while it is offered
	// greeting replaces the whole greeting when set (lines without CRLF).
	greeting []string
	// tlsConfig offers STARTTLS.
	tlsConfig *tls.Config
	// answer is the reply to a login; "" hangs up. The default accepts
	// every password but "wrong".
	answer func(user, pass, authzid string) string
	// xclient is the reply to XCLIENT.
	xclient string
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
	b := &fakeBackend{
		t:       t,
		ln:      ln,
		caps:    []string{`"IMPLEMENTATION" "fake"`, `"SIEVE" "fileinto"`, `"SASL" "PLAIN LOGIN"`, `"VERSION" "1.0"`, `"XCLIENT"`},
		xclient: `OK "Updated"`,
	}
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

// fakeSource feeds the parser from the backend's connection, keeping the
// raw command.
type fakeSource struct {
	r   *bufio.Reader
	raw strings.Builder
}

func (s *fakeSource) literal(n int) ([]byte, error) {
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
	defer func() { c.Close() }()
	src := &fakeSource{r: bufio.NewReader(c)}
	reply := func(lines ...string) {
		io.WriteString(c, strings.Join(lines, "\r\n")+"\r\n")
	}
	capabilities := func(ok string) {
		var lines []string
		for _, l := range b.caps {
			lines = append(lines, l)
			if strings.HasPrefix(l, `"SASL"`) && b.tlsConfig != nil {
				if _, isTLS := c.(*tls.Conn); !isTLS {
					lines = append(lines, `"STARTTLS"`)
				}
			}
		}
		reply(append(lines, ok)...)
	}
	if b.greeting != nil {
		reply(b.greeting...)
	} else {
		capabilities(`OK "fake ready"`)
	}
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
			reply(`NO "fake: ` + err.Error() + `"`)
			continue
		}
		if loggedIn {
			if cmd.name == "LOGOUT" {
				reply(`OK "fake LOGOUT"`)
				return
			}
			reply(`OK "fake ` + cmd.name + `"`)
			continue
		}
		switch cmd.name {
		case "CAPABILITY":
			capabilities(`OK "Capability completed."`)
			continue
		case "XCLIENT":
			reply(b.xclient)
			continue
		case "STARTTLS":
			reply(`OK "Begin TLS negotiation now."`)
			tc := tls.Server(c, b.tlsConfig)
			if tc.Handshake() != nil {
				return
			}
			c, src.r = tc, bufio.NewReader(tc)
			capabilities(`OK "TLS negotiation successful."`)
			continue
		case "AUTHENTICATE":
		default:
			reply(`NO "fake: not logged in"`)
			continue
		}
		var ir string
		if len(cmd.args) == 2 {
			ir = cmd.args[1].s
		} else {
			reply(`""`)
			l, err := src.nextLine()
			if err != nil {
				return
			}
			b.record(string(l))
			args, err := parseArgs(l, src, 1<<20)
			if err != nil || len(args) != 1 {
				reply(`NO "fake: broken response"`)
				continue
			}
			ir = args[0].s
		}
		dec, _ := base64.StdEncoding.DecodeString(ir)
		parts := strings.Split(string(dec), "\x00")
		if len(parts) != 3 {
			reply(`NO "fake: broken PLAIN"`)
			continue
		}
		ans := b.answer(parts[1], parts[2], parts[0])
		if ans == "" {
			return
		}
		if strings.HasPrefix(ans, "OK") {
			loggedIn = true
			io.WriteString(c, ans+"\r\n"+b.afterLogin)
			continue
		}
		reply(ans)
	}
}
