// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// socketPair returns the two ends of a connected UNIX stream socket.
func socketPair(t testing.TB) (*net.UnixConn, *net.UnixConn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

var knownVerbs = map[string]bool{
	"HOST-LIST": true, "HOST-LIST-REMOVED": true, "DIRECTOR-LIST": true, "DIRECTOR-ADD": true,
	"DIRECTOR-REMOVE": true, "HOST-SET": true, "HOST-UPDATE": true, "HOST-UP": true, "HOST-DOWN": true,
	"HOST-REMOVE": true, "HOST-FLUSH": true, "HOST-RESET-USERS": true, "USER-LOOKUP": true,
	"USER-LIST": true, "USER-MOVE": true, "USER-KICK": true, "USER-KICK-ALT": true,
}

// FuzzParseRequest: any line parses or is refused, never panics; what
// parses names a known command and, where it names a backend, an address
// in the form the ring hashes.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"HOST-LIST", "HOST-SET\t127.0.0.11@tag\t50", "HOST-UPDATE\t::1\t0", "HOST-FLUSH\t", "HOST-RESET-USERS\t\t5",
		"USER-LOOKUP\tuser\001t\ttag", "USER-MOVE\t123\t127.0.0.1", "USER-KICK\tu\tnowait", "USER-KICK-ALT\tf\tv\tnowait",
		"DIRECTOR-ADD\t10.0.0.1\t9090", "\001", "HOST-UP\t[::ffff:127.0.0.1]", "\x00", "HOST-SET\t1.2.3.4\t4294967296",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := parseRequest(line)
		if err != nil {
			return
		}
		if !knownVerbs[r.verb] {
			t.Fatalf("parseRequest(%q) accepted verb %q", line, r.verb)
		}
		if r.ip != "" {
			if ip, err := parseIP(r.ip); err != nil || ip != r.ip {
				t.Fatalf("parseRequest(%q): ip %q is not canonical (%q, %v)", line, r.ip, ip, err)
			}
		}
		if r.vhosts < -1 || r.vhosts > 1<<32 {
			t.Fatalf("parseRequest(%q): vhosts %d", line, r.vhosts)
		}
	})
}

// FuzzTabEscape: escaping then unescaping gives the string back, and the
// escaped form never holds a separator.
func FuzzTabEscape(f *testing.F) {
	f.Add("a\tb\r\n\001c")
	f.Fuzz(func(t *testing.T, s string) {
		e := tabEscape(s)
		if strings.ContainsAny(e, "\t\r\n") || TabUnescape(e) != s {
			t.Fatalf("tabEscape(%q) = %q", s, e)
		}
		TabUnescape(s)
		splitTabEscaped(s)
	})
}

// FuzzSession feeds a whole connection's input after the handshake to the
// socket's server: it never panics, answers only in whole lines, and ends
// when the input does.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"HOST-LIST\n", "HOST-DOWN\t127.0.0.11\nHOST-FLUSH\t127.0.0.11\n", "USER-LOOKUP\tuser0001\n",
		"HOST-SET\t127.0.0.13@x\t7\nHOST-UPDATE\t127.0.0.13\t2000\nUSER-LIST\n", "bogus\nHOST-LIST\n",
		"USER-MOVE\tu\t127.0.0.12\nUSER-KICK\tu\nHOST-REMOVE\t127.0.0.11\nDIRECTOR-LIST\nHOST-LIST-REMOVED\n",
		"\r\n", "HOST-LIST", strings.Repeat("x", maxLine+2) + "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		ops := newFakeOps("127.0.0.11", "127.0.0.12", "127.0.0.13@x")
		ops.assign("u", "127.0.0.11", testNow.Add(time.Minute))
		s := &Socket{Ops: ops, Log: discardLog(), OpTimeout: 5 * time.Second}
		svc := &service{ops: ops, now: func() time.Time { return testNow }}
		server, client := socketPair(t)
		done := make(chan struct{})
		go func() {
			s.serveConn(context.Background(), svc, server, "fuzz")
			server.Close()
			close(done)
		}()
		var out bytes.Buffer
		read := make(chan struct{})
		go func() {
			io.Copy(&out, client)
			close(read)
		}()
		client.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(client, handshake+input)
		// The client closes its side, as poolmon does: the server still
		// runs every command it got, to the end of the input.
		client.CloseWrite()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the server did not end for input %q", input)
		}
		<-read
		client.Close()
		if !strings.HasPrefix(out.String(), handshake) {
			t.Fatalf("output %q does not begin with the handshake", out.String())
		}
		if o := out.String(); o != "" && !strings.HasSuffix(o, "\n") {
			t.Fatalf("output %q ends in the middle of a line", o)
		}
	})
}
