// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/internal/gatewaytest"
	"github.com/maildirector/maildirector/internal/testtls"
)

// seeds are command lines from the transcripts; more are in
// testdata/fuzz.
var seeds = []string{
	"CAPA",
	"capa",
	"USER bob",
	"PASS  p w ",
	"PASS",
	"AUTH",
	"AUTH PLAIN AGJvYgBzZWNyZXQ=",
	"AUTH PLAIN =",
	"AUTH  PLAIN",
	"STLS",
	"QUIT",
	"XCLIENT ADDR=192.0.2.9 PORT=4321 SESSION=sess-42 TTL=3",
	"NOOP\x00",
	"\xff\xfe USER",
	"USER bob\r",
	" USER bob",
	"UUUUUUUUUUUUUUUUU x",
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, err := parseCommand(line)
		if errors.Is(err, errGarbage) {
			if cmd != nil {
				t.Fatalf("garbage with a command %+v", cmd)
			}
			keyword, _, _ := bytes.Cut(line, []byte(" "))
			if bytes.IndexByte(line, 0) < 0 && printable(string(keyword)) {
				t.Fatalf("%q called garbage", line)
			}
			return
		}
		if cmd == nil {
			t.Fatalf("%q: no command and error %v", line, err)
		}
		if err != nil && !errors.Is(err, errBadChars) {
			t.Fatalf("%q: unexpected error %v", line, err)
		}
		if errors.Is(err, errBadChars) != strings.Contains(cmd.args, "\r") {
			t.Fatalf("%q: error %v, arguments %q", line, err, cmd.args)
		}
		if cmd.name != strings.ToUpper(cmd.name) || !printable(cmd.name) || len(cmd.name) > maxKeyword {
			t.Fatalf("%q: bad keyword %q", line, cmd.name)
		}
		// The keyword and arguments are the line, nothing lost or added.
		back := cmd.name
		if cmd.hasArgs {
			back += " " + cmd.args
		}
		if cmd.name != "" && !strings.EqualFold(back, string(line)) {
			t.Fatalf("%q parsed as %+v", line, cmd)
		}
		// Whatever fields returns rejoins to the arguments.
		if f, ok := fields(cmd.args); ok && strings.Join(f, " ") != cmd.args {
			t.Fatalf("fields(%q) = %q", cmd.args, f)
		}
	})
}

// FuzzPreLogin sends arbitrary bytes to a live gateway (trusted client,
// STLS offered, a passdb that refuses everyone) and checks that the
// session neither panics nor hangs, that every reply is a printable line,
// and that no backend is ever contacted.
func FuzzPreLogin(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s + "\r\n"))
	}
	f.Add([]byte("AUTH PLAIN\r\n" + b64("\x00bob\x00secret") + "\r\nAUTH LOGIN\r\nYm9i\r\n*\r\n"))
	f.Add([]byte("USER bob\r\nPASS x\r\nUSER bob\r\nPASS x\r\nUSER bob\r\nPASS x\r\nCAPA\r\n"))
	f.Add([]byte("XCLIENT TTL=1\r\nUSER bob\r\nPASS x\r\n"))
	f.Add([]byte("STLS\r\n\x16\x03\x01\x00\x05hello"))
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
		if !bytes.HasPrefix(out, []byte("+OK [XCLIENT] maildirector ready.\r\n")) {
			t.Fatalf("greeting %q", out)
		}
		lines := strings.SplitAfter(string(out), "\r\n")
		if whole && lines[len(lines)-1] != "" {
			t.Fatalf("output %q does not end in CRLF", out)
		}
		for _, l := range lines[:len(lines)-1] {
			body := strings.TrimSuffix(l, "\r\n")
			if body == "" || !printable(body) {
				t.Fatalf("malformed reply line %q in %q", l, out)
			}
		}
		if n := e.backend.connections(); n != 0 {
			t.Fatalf("a refused login contacted the backend (%d connections)", n)
		}
	})
}
