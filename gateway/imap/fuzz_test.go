// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strconv"
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
	"a1 CAPABILITY",
	"a2 noop",
	"a LOGIN bob secret",
	`a LOGIN "us\"er" "p\\w d"`,
	"a LOGIN {3}\nbob {8}\nse\"c\\ret\n",
	"a LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n",
	"a LOGIN bob {0+}\r\n\r\n",
	"a LOGIN {6+}\r\nbj\xc3\xb6rn secret\r\n",
	"a LOGIN bob {8193+}\r\n",
	"a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=",
	"a AUTHENTICATE PLAIN =",
	`a1 ID ("x-originating-ip" "192.0.2.9" "x-originating-port" "4321" "x-proxy-ttl" "3")`,
	"a1 ID ((((()))))",
	"a1 ID ({3+}\nfoo {3}\nbar)\n",
	"a1 ID NIL",
	"a1 STARTTLS",
	"a1 NOOP\x00",
	"\xff\xfe NOOP",
	"a+ NOOP",
	" NOOP",
	"a1 LOGIN {-0}\n\n",
	"a1 LOGIN {+5}\nhello\n",
}

// fuzzSource serves literals and continuation lines from the fuzz input.
type fuzzSource struct {
	t          *testing.T
	rest       []byte
	maxLiteral int
}

func (s *fuzzSource) literal(n int, sync bool) ([]byte, error) {
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

func parseStream(t *testing.T, data []byte, maxLiteral int) (*command, error) {
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	first = bytes.TrimSuffix(first, []byte("\r"))
	return parseCommand(first, &fuzzSource{t: t, rest: rest, maxLiteral: maxLiteral}, maxLiteral)
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxLiteral = 64
		cmd, err := parseStream(t, data, maxLiteral)
		var se *syntaxError
		switch {
		case err == nil:
		case errors.As(err, &se):
			if se.tagged && (cmd == nil || cmd.tag == "") {
				t.Fatalf("tagged syntax error %q without a tag", se.msg)
			}
			if !printable(se.msg) {
				t.Fatalf("error text %q would break the reply line", se.msg)
			}
			return
		case errors.Is(err, errGarbage), errors.Is(err, errLiteralTooBig),
			errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if cmd == nil || cmd.tag == "" || !printable(cmd.tag) || strings.ContainsAny(cmd.tag, "+ ") {
			t.Fatalf("parsed command %+v has a bad tag", cmd)
		}
		if cmd.name == "" || cmd.name != strings.ToUpper(cmd.name) || !printable(cmd.name) {
			t.Fatalf("parsed command %+v has a bad name", cmd)
		}
		// Every string the parser yields survives the way the gateway
		// writes it to a backend: quoted when possible, else a literal.
		for _, a := range cmd.args {
			s, ok := a.astring()
			if !ok {
				continue
			}
			in := "T X " + quote(s)
			if !canQuote(s) {
				in = "T X {" + strconv.Itoa(len(s)) + "+}\n" + s + "\n"
			}
			back, err := parseStream(t, []byte(in), len(s))
			if err != nil || len(back.args) != 1 || back.args[0].kind != argString || back.args[0].s != s {
				t.Fatalf("%q written as %q reads back as %+v, %v", s, in, back, err)
			}
		}
	})
}

// FuzzPreLogin sends arbitrary bytes to a live gateway (trusted client,
// STARTTLS offered, a passdb that refuses everyone) and checks that the
// session neither panics nor hangs, that every reply is a well-formed
// line, and that no backend is ever contacted.
func FuzzPreLogin(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s + "\r\n"))
	}
	f.Add([]byte("a AUTHENTICATE PLAIN\r\n" + b64("\x00bob\x00secret") + "\r\nb AUTHENTICATE LOGIN\r\nYm9i\r\n*\r\n"))
	f.Add([]byte("a1 LOGIN bob x\r\na2 LOGIN bob x\r\na3 LOGIN bob x\r\na4 NOOP\r\n"))
	f.Add([]byte("a1 STARTTLS\r\n\x16\x03\x01\x00\x05hello"))
	catcher := &gatewaytest.PanicCatcher{}
	srvCfg, _ := testtls.Configs(f)
	e := start(f, withTLS(gateway.TLSStartTLS, srvCfg), passdbAnswer(auth.Result{Status: auth.StatusPasswordMismatch}, nil),
		func(s *setup) {
			s.listener.Trusted = gatewaytest.Prefixes(f, "127.0.0.0/8")
			s.limits.LoginTimeout = 5 * time.Second
			s.log = slog.New(catcher)
		})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, whole := catcher.FuzzSession(t, e.addr, data)
		if !bytes.HasPrefix(out, []byte(greetingLocal[:len("* OK [CAPABILITY ")])) {
			t.Fatalf("greeting %q", out)
		}
		lines := strings.SplitAfter(string(out), "\r\n")
		if whole && lines[len(lines)-1] != "" {
			t.Fatalf("output %q does not end in CRLF", out)
		}
		for _, l := range lines[:len(lines)-1] {
			body := strings.TrimSuffix(l, "\r\n")
			if !printable(body) || strings.HasPrefix(body, " ") || !strings.Contains(body, " ") {
				t.Fatalf("malformed reply line %q in %q", l, out)
			}
		}
		if n := e.backend.connections(); n != 0 {
			t.Fatalf("a refused login contacted the backend (%d connections)", n)
		}
	})
}
