// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/internal/gatewaytest"
	"github.com/maildirector/maildirector/internal/testtls"
)

// sessionSeeds are client byte streams from the transcripts, written
// whole: LMTP clients pipeline (RFC 2033 section 4.2 requires PIPELINING).
var sessionSeeds = []string{
	"LHLO mta\r\nMAIL FROM:<s@x> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<a1@x>\r\nRCPT TO:<b1@x>\r\n" +
		"RCPT TO:<unknown@x>\r\nRCPT TO:<a2+tag@x>\r\nRCPT TO:<down@x>\r\nDATA\r\n" +
		"Subject: t\r\n\r\nline\r\n..dotted\r\n.\r\nQUIT\r\n",
	"LHLO mta\r\nMAIL FROM:<> SMTPUTF8\r\nRCPT TO:<@relay.example:bj\xc3\xb6rn@x>\r\nDATA\r\n.\r\nRSET\r\nNOOP\r\nVRFY alice\r\nQUIT\r\n",
	"LHLO mta\r\nMAIL FROM:<s@x>\r\nRCPT TO:<reject@x>\r\nRCPT TO:<a@x>\r\nDATA\r\nbody\r\n.\r\n",
	"LHLO mta\r\nMAIL FROM:<s@x> SIZE=99999\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nDATA\r\n" +
		strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 20) + ".\r\nNOOP\r\n",
	"LHLO mta\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a1@x>\r\nRCPT TO:<a2@x>\r\nRCPT TO:<a3@x>\r\nRCPT TO:<a4@x>\r\n" +
		"RCPT TO:<a5@x>\r\nRCPT TO:<a6@x>\r\nDATA\r\nx\r\n.\r\n",
	"LHLO mta\r\nXCLIENT ADDR=192.0.2.7 PORT=2525 SESSION=abc TTL=1\r\nLHLO mta\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a1@x>\r\n",
	"XCLIENT ADDR=IPV6:2001+3Adb8::1 SESSION=a+2Bb TTL=+35\r\nLHLO mta\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nDATA\r\nhi\r\n.\r\n",
	"MAIL FROM:<a@b>\r\nEHLO x\r\nHELO x\r\nLHLO\r\nRCPT TO:<a@b>\r\nDATA\r\nBOGUS\r\n",
	"LHLO mta\r\nMAIL FROM:a@b\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nMAIL FROM:<a@b> SIZE=-1\r\nMAIL FROM:<a b@c>\r\nRCPT TO:<>\r\n",
	"LHLO mta\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nDATA\r\nno end of data\r\n",
	"LHLO mta\nMAIL FROM:<s@x>\nRCPT TO:<a@x>\nDATA\nbare\nline feeds\n.\nQUIT\n",
	"LHLO mta\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello",
	"LHLO mta\r\nMAIL FROM:<s@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n.\r\n",
	"LHLO mta\r\nNOOP\x00\r\n",
	"LHLO " + strings.Repeat("x", 300) + "\r\nNOOP\r\n",
}

// fuzzBackend is a lean LMTP backend for the session fuzzer. It keeps no
// transcript (a fuzzing run makes many thousands of sessions); instead it
// checks every command line the gateway sends and keeps the first that
// is not a clean one: a client's bytes must never reach a backend as
// control characters, nor split or join its command lines.
type fuzzBackend struct {
	ln      net.Listener
	dieData bool // hang up in DATA after the first line
	mu      sync.Mutex
	open    int
	idle    *sync.Cond
	bad     string
}

func newFuzzBackend(f *testing.F, dieData bool) *fuzzBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	b := &fuzzBackend{ln: ln, dieData: dieData}
	b.idle = sync.NewCond(&b.mu)
	f.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.open++
			b.mu.Unlock()
			go b.serve(c)
		}
	}()
	return b
}

func (b *fuzzBackend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *fuzzBackend) complain(format string, args ...any) {
	b.mu.Lock()
	if b.bad == "" {
		b.bad = fmt.Sprintf(format, args...)
	}
	b.mu.Unlock()
}

// settle waits until every backend connection of the session has ended
// (the gateway closes them as the session ends, but the backend may still
// be reading a QUIT), so that a complaint is pinned on the right input,
// and returns the complaint.
func (b *fuzzBackend) settle(t *testing.T) string {
	t.Helper()
	timer := time.AfterFunc(10*time.Second, func() { b.mu.Lock(); b.idle.Broadcast(); b.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(10 * time.Second)
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.open > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d backend connections still open after the session", b.open)
		}
		b.idle.Wait()
	}
	bad := b.bad
	b.bad = ""
	return bad
}

func (b *fuzzBackend) serve(c net.Conn) {
	defer func() {
		c.Close()
		b.mu.Lock()
		b.open--
		b.idle.Broadcast()
		b.mu.Unlock()
	}()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprint(c, "220 fake LMTP\r\n")
	rcpts := 0
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line, ok := strings.CutSuffix(l, "\r\n")
		if !ok || !cleanLine(line) {
			b.complain("the backend got the command line %q", l)
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "LHLO":
			fmt.Fprint(c, "250-fake\r\n250-8BITMIME\r\n250-SIZE\r\n250-SMTPUTF8\r\n250-XCLIENT ADDR PORT SESSION TTL\r\n250 PIPELINING\r\n")
		case "XCLIENT":
			fmt.Fprint(c, "220 fake LMTP\r\n")
		case "MAIL":
			rcpts = 0
			fmt.Fprint(c, "250 2.1.0 OK\r\n")
		case "RCPT":
			// A backend's own refusal is the recipient's answer.
			if strings.HasPrefix(strings.ToLower(arg), "to:<reject") {
				fmt.Fprint(c, "550 5.1.1 <x> User doesn't exist\r\n")
				continue
			}
			rcpts++
			fmt.Fprint(c, "250 2.1.5 OK\r\n")
		case "DATA":
			fmt.Fprint(c, "354 go\r\n")
			if b.dieData {
				r.ReadString('\n')
				return
			}
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				// The gateway re-encodes the message: every line ends in
				// CRLF, and a line of one dot ends it.
				if !strings.HasSuffix(l, "\r\n") {
					b.complain("the backend got the message line %q", l)
				}
				if l == ".\r\n" {
					break
				}
			}
			for i := 0; i < rcpts; i++ {
				fmt.Fprintf(c, "250 2.0.0 <r%d> Saved\r\n", i)
			}
		case "QUIT":
			fmt.Fprint(c, "221 bye\r\n")
			return
		default:
			fmt.Fprint(c, "250 OK\r\n")
		}
	}
}

// cleanLine: no control characters (UTF-8 above them is SMTPUTF8's).
func cleanLine(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// checkReplies asserts that out is a sequence of well-formed LMTP reply
// lines (RFC 5321 4.2: a code of 2xx-5xx, "-" on every line but the last
// of a reply, which repeats the code, clean text), starting with the
// greeting.
func checkReplies(t *testing.T, out []byte, whole bool) {
	t.Helper()
	const greeting = "220 gw.test maildirector LMTP ready\r\n"
	if !bytes.HasPrefix(out, []byte(greeting)) {
		t.Fatalf("greeting %q", out)
	}
	lines := strings.SplitAfter(string(out), "\r\n")
	if whole && lines[len(lines)-1] != "" {
		t.Fatalf("output %q does not end in CRLF", out)
	}
	cont := ""
	for _, l := range lines[:len(lines)-1] {
		body := strings.TrimSuffix(l, "\r\n")
		if len(body) < 4 || body[0] < '2' || body[0] > '5' || !isDigit(body[1]) || !isDigit(body[2]) ||
			(body[3] != ' ' && body[3] != '-') || !cleanLine(body) {
			t.Fatalf("malformed reply line %q in %q", l, out)
		}
		if cont != "" && body[:3] != cont {
			t.Fatalf("reply line %q continues a %s reply in %q", l, cont, out)
		}
		cont = ""
		if body[3] == '-' {
			cont = body[:3]
		}
	}
	if whole && cont != "" {
		t.Fatalf("output %q ends inside a multi-line reply", out)
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// FuzzSession sends arbitrary client bytes to a live LMTP gateway in
// front of two fake backends (B hangs up during DATA), with recipients
// that are unknown, temporarily failing, refused by the backend, over
// max_recipients, in messages over the size limit; the client is trusted
// (XCLIENT) and STARTTLS is offered. The session must neither panic nor
// hang, must answer with well-formed reply lines only, and must pass the
// backends clean command lines and CRLF-framed messages.
func FuzzSession(f *testing.F) {
	for _, s := range sessionSeeds {
		f.Add([]byte(s))
	}
	catcher := &gatewaytest.PanicCatcher{}
	a, b := newFuzzBackend(f, false), newFuzzBackend(f, true)
	hosts, err := director.ParseHosts([]string{"127.0.0.1"})
	if err != nil {
		f.Fatal(err)
	}
	dir, err := director.New(director.Config{Hosts: hosts, Store: memory.New(), Logger: gatewaytest.Discard})
	if err != nil {
		f.Fatal(err)
	}
	p := &gateway.Pipeline{Director: dir, Ports: map[string]int{"lmtp": a.port()}, Timeout: 5 * time.Second,
		ConnectAttempts: 1, Log: gatewaytest.Discard}
	srv := &Server{Pipeline: p, Lookup: routeByName("127.0.0.1", "127.0.0.1", a.port(), b.port()),
		Hostname: "gw.test", RecipientDelimiter: "+-", MaxRecipients: 5, MaxMessageSize: 512,
		MaxBadCommands: 5, Timeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	srvCfg, _ := testtls.Configs(f)
	l := &gateway.Listener{Protocol: "lmtp", Address: "127.0.0.1:0", Handler: srv,
		Trusted: gatewaytest.Prefixes(f, "127.0.0.0/8"), TLSMode: gateway.TLSStartTLS, TLSConfig: srvCfg}
	addr := gatewaytest.Serve(f, l, gateway.Limits{LoginTimeout: 5 * time.Second, MaxLine: 256}, slog.New(catcher))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, whole := catcher.FuzzSession(t, addr, data)
		checkReplies(t, out, whole)
		for _, be := range []*fuzzBackend{a, b} {
			if bad := be.settle(t); bad != "" {
				t.Fatalf("%s (client sent %q)", bad, data)
			}
		}
	})
}

// FuzzParseReply reads backend replies: a reply it takes has a code of
// 200-599, and reads back the same once written the way the gateway
// passes it on.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"250 2.1.5 OK", "250-fake\n250-SIZE 1000\n250 PIPELINING", "451 4.4.0 <a@x> Remote server not answering",
		"550 5.1.1", "354 go", "220 fake LMTP", "250  2.0.0  spaced", "25", "999 x", "250 5.1.1 wrong class",
		"250 2.1000.5 long", "250 2..5 empty", "+25 x", "552-5.3.4\n552 5.3.4 Message too big",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseReply(strings.Split(s, "\n"))
		if err != nil {
			return
		}
		if r.code < 200 || r.code > 599 {
			t.Fatalf("%q gave code %d", s, r.code)
		}
		if r.enh != "" && !isEnhanced(r.enh, r.code) {
			t.Fatalf("%q gave enhanced code %q for %d", s, r.enh, r.code)
		}
		back, err := parseReply([]string{r.String()})
		if err != nil || back != r {
			t.Fatalf("%q read as %+v, written %q, read back as %+v, %v", s, r, r.String(), back, err)
		}
	})
}

// FuzzXtext: XCLIENT values survive RFC 3461 xtext, and the encoding is
// a single clean word.
func FuzzXtext(f *testing.F) {
	for _, s := range []string{"192.0.2.7", "a+b=c", "sp ace", "\x00\xff", "+2B", "+", "+4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x := xtext(s)
		for i := 0; i < len(x); i++ {
			if x[i] < '!' || x[i] > '~' || x[i] == '=' {
				t.Fatalf("xtext(%q) = %q", s, x)
			}
		}
		if back := unxtext(x); back != s {
			t.Fatalf("xtext(%q) = %q, decoded %q", s, x, back)
		}
		unxtext(s)
	})
}
