// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/internal/gatewaytest"
	"github.com/maildirector/maildirector/internal/testtls"
)

// seeds are command streams from the transcripts: the first line, then
// literal bytes and continuation lines.
var seeds = []string{
	"CAPABILITY",
	"noop",
	`NOOP "STARTTLS-RESYNC-CAPA"`,
	`NOOP "a\"b\\c"`,
	"NOOP {3+}\r\nx y\r\n",
	"NOOP {4}\r\na\r\nb\r\n",
	`AUTHENTICATE "PLAIN" "AGJvYgBzZWNyZXQ="`,
	"AUTHENTICATE \"PLAIN\" {16+}\r\nAGJvYgBzZWNyZXQ=\r\n",
	"AUTHENTICATE {5+}\r\nPLAIN \"AGJvYgBzZWNyZXQ=\"\r\n",
	`AUTHENTICATE "PLAIN" ""`,
	"AUTHENTICATE PLAIN",
	"XCLIENT ADDR=192.0.2.9 PORT=4321 SESSION=sess-42 TTL=3",
	`PUTSCRIPT "a" {5+}` + "\r\nkeep;\r\n",
	"NOOP {8193+}\r\n",
	"NOOP {+5}\r\nhello\r\n",
	"NOOP {-0}\r\n\r\n",
	`NOOP "a\b"`,
	"NOOP\x00",
	"\xff\xfe NOOP",
	" NOOP",
	`"*"`,
}

// fuzzSource serves literals and continuation lines from the fuzz input.
type fuzzSource struct {
	t          *testing.T
	rest       []byte
	maxLiteral int
}

func (s *fuzzSource) literal(n int) ([]byte, error) {
	if n < 0 || n > s.maxLiteral {
		s.t.Fatalf("literal of %d bytes requested, limit %d", n, s.maxLiteral)
	}
	if n > len(s.rest) {
		return nil, io.ErrUnexpectedEOF
	}
	b := s.rest[:n]
	s.rest = s.rest[n:]
	return b, nil
}

func (s *fuzzSource) nextLine() ([]byte, error) {
	line, rest, ok := bytes.Cut(s.rest, []byte("\n"))
	if !ok {
		return nil, io.EOF
	}
	s.rest = rest
	return bytes.TrimSuffix(line, []byte("\r")), nil
}

func split(t *testing.T, data []byte, maxLiteral int) ([]byte, *fuzzSource) {
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	return bytes.TrimSuffix(first, []byte("\r")), &fuzzSource{t: t, rest: rest, maxLiteral: maxLiteral}
}

// expectedError reports whether err is one the parsers may return.
func expectedError(t *testing.T, err error) bool {
	var se *syntaxError
	switch {
	case errors.As(err, &se):
		if !printable(se.msg) {
			t.Fatalf("error text %q would break the reply line", se.msg)
		}
		return true
	case errors.Is(err, errGarbage), errors.Is(err, errLiteralTooBig),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxLiteral = 64
		first, src := split(t, data, maxLiteral)
		cmd, err := parseCommand(first, src, maxLiteral)
		if err != nil {
			if !expectedError(t, err) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if cmd.name == "" || cmd.name != strings.ToUpper(cmd.name) || !printable(cmd.name) || strings.ContainsAny(cmd.name, " \"{") {
			t.Fatalf("parsed command %+v has a bad name", cmd)
		}
		// Every string survives the way the gateway writes strings (the
		// TAG echo, a passdb's reason): quoted, or a literal.
		for _, a := range cmd.args {
			if a.kind != argString {
				if a.s == "" || strings.ContainsAny(a.s, " \"{\\()") {
					t.Fatalf("bad atom %q", a.s)
				}
				continue
			}
			line, src := split(t, []byte("NOOP "+quote(a.s)+"\r\n"), len(a.s))
			back, err := parseCommand(line, src, len(a.s))
			if err != nil || len(back.args) != 1 || back.args[0].kind != argString || back.args[0].s != a.s {
				t.Fatalf("%q written as %q reads back as %+v, %v", a.s, quote(a.s), back, err)
			}
		}
	})
}

// FuzzParseResponse: a backend's lines never panic the parser, and what
// it reads is what it was sent.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		`"IMPLEMENTATION" "Dovecot (Debian) Pigeonhole"`,
		`"SASL" "PLAIN LOGIN"`,
		`"STARTTLS"`,
		`OK "Dovecot (Debian) ready."`,
		`OK (SASL "c2VydmVy") "Logged in."`,
		`NO (TRYLATER) "Maintenance."`,
		`NO (QUOTA/MAXSIZE) "Too big."`,
		`BYE "Bye."`,
		"OK {10}\r\nLogged\r\nin\r\n",
		"NO (TAG {3}\r\nabc) \"Done\"\r\n",
		"{5}\r\nhello\r\n",
		`OK`,
		`ok (`,
		`NO ()`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxLiteral = 64
		first, src := split(t, data, maxLiteral)
		r, err := parseResponse(first, src, maxLiteral)
		if err != nil {
			if !expectedError(t, err) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		switch r.status {
		case "OK", "NO", "BYE":
			if len(r.data) != 0 {
				t.Fatalf("status line with data: %+v", r)
			}
		case "":
			if len(r.data) == 0 || r.data[0].kind != argString {
				t.Fatalf("data line without a leading string: %+v", r)
			}
		default:
			t.Fatalf("status %q", r.status)
		}
		if strings.ContainsAny(r.code, " ()\"{") {
			t.Fatalf("response code %q", r.code)
		}
		line, src := split(t, []byte("NO "+quote(r.text)+"\r\n"), len(r.text))
		if back, err := parseResponse(line, src, len(r.text)); err != nil || back.text != r.text {
			t.Fatalf("text %q reads back as %+v, %v", r.text, back, err)
		}
	})
}

// FuzzPreLogin sends arbitrary bytes to a live gateway (trusted client,
// STARTTLS offered, a passdb that refuses everyone) and checks that the
// session neither panics nor hangs, that it greets properly, and that no
// backend is ever contacted.
func FuzzPreLogin(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s + "\r\n"))
	}
	f.Add([]byte("AUTHENTICATE \"PLAIN\"\r\n\"AGJvYgBzZWNyZXQ=\"\r\nAUTHENTICATE \"LOGIN\"\r\n\"Ym9i\"\r\n\"*\"\r\n"))
	f.Add([]byte("AUTHENTICATE \"PLAIN\" \"AGJvYgB4\"\r\nAUTHENTICATE \"PLAIN\" \"AGJvYgB4\"\r\nAUTHENTICATE \"PLAIN\" \"AGJvYgB4\"\r\nNOOP\r\n"))
	f.Add([]byte("STARTTLS\r\n\x16\x03\x01\x00\x05hello"))
	catcher := &gatewaytest.PanicCatcher{}
	srvCfg, _ := testtls.Configs(f)
	e := start(f, withTLS(gateway.TLSStartTLS, srvCfg), passdbAnswer(auth.Result{Status: auth.StatusPasswordMismatch}, nil),
		func(s *setup) {
			s.listener.Trusted = gatewaytest.Prefixes(f, "127.0.0.0/8")
			s.limits.LoginTimeout = 5 * time.Second
			s.log = slog.New(catcher)
		})
	want := strings.Join(greeting("PLAIN LOGIN", true, true), "\r\n") + "\r\n"
	f.Fuzz(func(t *testing.T, data []byte) {
		out, whole := catcher.FuzzSession(t, e.addr, data)
		if !bytes.HasPrefix(out, []byte(want)) {
			t.Fatalf("greeting %q", out)
		}
		if whole && len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
			t.Fatalf("output %q does not end in CRLF", out)
		}
		if n := e.backend.connections(); n != 0 {
			t.Fatalf("a refused login contacted the backend (%d connections)", n)
		}
	})
}
