// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"plain", "plain"},
		{"", ""},
		{"a\tb", "a\x01tb"},
		{"\x00\x01\t\r\n", "\x010\x011\x01t\x01r\x01n"},
		{"Subject: hi\tthere\n", "Subject: hi\x01tthere\x01n"},
	} {
		if got := escape(tc.in); got != tc.out {
			t.Errorf("escape(%q) = %q, want %q", tc.in, got, tc.out)
		}
		if got := unescape(tc.out); got != tc.in {
			t.Errorf("unescape(%q) = %q, want %q", tc.out, got, tc.in)
		}
	}
	// Dovecot's reading of odd escapes: an unknown one is the character
	// itself, a trailing \001 is dropped.
	for in, want := range map[string]string{"a\x01xb": "axb", "ab\x01": "ab", "\x01\x01": "\x01"} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitJoin(t *testing.T) {
	// What `doveadm mailbox status -S … -u user messages INBOX` sends.
	line := "\talice@example.com\tmailbox status\t-u\talice@example.com\t--\tmessages\tINBOX"
	f := splitLine(line)
	want := []string{"", "alice@example.com", "mailbox status", "-u", "alice@example.com", "--", "messages", "INBOX"}
	if !slices.Equal(f, want) {
		t.Fatalf("split = %q", f)
	}
	if got := joinLine(f); got != line+"\n" {
		t.Fatalf("join = %q", got)
	}
	if f := splitLine(""); len(f) != 0 {
		t.Fatalf("empty line: %q", f)
	}
	if f := splitLine("D\tu\x01tx\tcmd"); !slices.Equal(f, []string{"D", "u\tx", "cmd"}) {
		t.Fatalf("escaped tab: %q", f)
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		line  string
		minor int
		ok    bool
	}{
		{"VERSION\tdoveadm-server\t1\t2", 2, true},
		{"VERSION\tdoveadm-server\t1\t0", 0, true},
		{"VERSION\tdoveadm-server\t1\t17", 17, true},
		{"VERSION\tdoveadm-server\t2\t0", 0, false},
		{"VERSION\tdoveadm-client\t1\t2", 0, false},
		{"VERSION\tdoveadm-server\t1", 0, false},
		{"VERSION\tdoveadm-server\t1\t", 0, false},
		{"VERSION\tdoveadm-server\t1\t2x", 0, false},
		{"VERSION\tdoveadm-server\t1\t-1", 0, false},
		{"a001 LOGIN x y", 0, false},
	} {
		minor, ok := parseVersion(tc.line, "doveadm-server")
		if ok != tc.ok || (ok && minor != tc.minor) {
			t.Errorf("parseVersion(%q) = %d, %v", tc.line, minor, ok)
		}
	}
}

func TestParseCommand(t *testing.T) {
	if c, why := parseCommand("v\tu\tfetch\ttext\tall"); c == nil || c.flags != "v" || c.user != "u" || c.name != "fetch" || !slices.Equal(c.args, []string{"text", "all"}) {
		t.Fatalf("got %+v, %q", c, why)
	}
	for line, why := range map[string]string{
		"":               "doveadm client: No command given",
		"\tuser":         "doveadm client: No command given",
		"X\tuser\tfetch": "doveadm client: Unknown flag: X",
	} {
		if c, got := parseCommand(line); c != nil || got != why {
			t.Errorf("parseCommand(%q) = %+v, %q; want %q", line, c, got, why)
		}
	}
	if c, _ := parseCommand("\tu\x010x\tfetch"); c == nil || !c.hasNUL() {
		t.Error("a NUL in the user is not noticed")
	}
	c, _ := parseCommand("D\tUser\tfetch\ttext\tmailbox\tIN\x01tBOX")
	if got := c.line("user@example.com"); got != "D\tuser@example.com\tfetch\ttext\tmailbox\tIN\x01tBOX\n" {
		t.Errorf("line = %q", got)
	}
}

func TestKickUser(t *testing.T) {
	for _, tc := range []struct {
		args []string
		user string
		at   int
	}{
		{[]string{"alice"}, "alice", 0},
		{[]string{"-f", "alice"}, "alice", 1},
		{[]string{"-a", "/run/anvil", "alice", "10.0.0.0/8"}, "alice", 2},
		{[]string{"-a/run/anvil", "alice"}, "alice", 1},
		{[]string{"-fa", "/run/anvil", "alice"}, "alice", 2},
		{[]string{"192.0.2.1", "alice"}, "alice", 1},
		{[]string{"--", "-alice"}, "-alice", 1},
		{[]string{"192.0.2.0/24"}, "", -1},
		{[]string{"ali*"}, "", -1},
		{[]string{"a?ice"}, "", -1},
		{[]string{"alice", "bob"}, "", -1},
		{nil, "", -1},
	} {
		user, at := kickUser(tc.args)
		if user != tc.user || at != tc.at {
			t.Errorf("kickUser(%q) = %q, %d; want %q, %d", tc.args, user, at, tc.user, tc.at)
		}
	}
}

func TestServerWide(t *testing.T) {
	for _, n := range []string{"stop", "reload", "who", "director map", "service stop", "stats dump", "dsync-server", "user", "log reopen"} {
		if !isServerWide(n) {
			t.Errorf("%s is let through", n)
		}
	}
	for _, n := range []string{"fetch", "mailbox status", "quota get", "expunge", "save", "sync", "search", "username"} {
		if isServerWide(n) {
			t.Errorf("%s is refused", n)
		}
	}
}

// packets builds a multiplexed stream.
func packets(ps ...any) []byte {
	var b bytes.Buffer
	for i := 0; i < len(ps); i += 2 {
		data := []byte(ps[i+1].(string))
		b.WriteByte(ps[i].(byte))
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.Write(data)
	}
	return b.Bytes()
}

func TestDemux(t *testing.T) {
	raw := packets(byte(0), "INBOX\t1", byte('L'), "\x04oops\n", byte(0), "", byte('X'), "ignored", byte(0), "\t\n+\n")
	d := &demux{r: bufio.NewReaderSize(bytes.NewReader(raw), 16), mux: true}
	got := map[byte]string{}
	buf := make([]byte, 3) // smaller than the packets: they arrive in pieces
	for {
		ch, n, err := d.next(buf)
		got[ch] += string(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got[0] != "INBOX\t1\t\n+\n" || got['L'] != "\x04oops\n" || got['X'] != "ignored" {
		t.Fatalf("got %q", got)
	}
	// A stream cut inside a header is the end of it.
	d = &demux{r: bufio.NewReader(bytes.NewReader(raw[:2])), mux: true}
	if _, _, err := d.next(buf); err != io.EOF {
		t.Fatalf("cut header: %v", err)
	}
}

func TestMuxWriter(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	m := newMuxWriter(w, true)
	m.reply([]byte("INBOX\t"))
	m.relayLog([]byte("\x04half a li"))
	m.fail(codeTempFail, "maildirector: down")
	want := packets(byte(0), "INBOX\t", byte('L'), "\x04half a li", byte('L'), "\n\x04maildirector: down\n", byte(0), "\n-TEMPFAIL\n")
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("got %q\nwant %q", b.Bytes(), want)
	}
	// Plain for a client of minor 0: no log lines at all.
	b.Reset()
	m = newMuxWriter(w, false)
	m.reply([]byte("x\t"))
	m.fail(codeNoUser, "User doesn't exist")
	if b.String() != "x\t\n-NOUSER\n" {
		t.Fatalf("plain: %q", b.String())
	}
	// Large replies are cut into packets.
	b.Reset()
	m = newMuxWriter(w, true)
	m.reply(bytes.Repeat([]byte("a"), maxPacket+1))
	w.Flush()
	if b.Len() != maxPacket+1+10 || b.Bytes()[maxPacket+5] != 0 {
		t.Fatalf("large: %d bytes", b.Len())
	}
}

func TestCopyDotStream(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, tc := range []struct{ in, copied, left string }{
		// What doveadm save sends: CRLF lines, an extra CRLF, the dot.
		{"Subject: two\r\n\r\nx\r\n\r\n.\r\n\tu\tfetch\n", "Subject: two\r\n\r\nx\r\n\r\n.\r\n", "\tu\tfetch\n"},
		{".\n", ".\n", ""},
		{"..stuffed\r\n.\r\nnext", "..stuffed\r\n.\r\n", "next"},
		{"a.\r\n.x\r\n.\r\n", "a.\r\n.x\r\n.\r\n", ""},
		// A line longer than the reader's buffer whose tail looks like
		// the end is no end.
		{long + ".\r\n" + ".\r\n", long + ".\r\n.\r\n", ""},
	} {
		var out bytes.Buffer
		r := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
		if err := copyDotStream(&out, r); err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		rest, _ := io.ReadAll(r)
		if out.String() != tc.copied || string(rest) != tc.left {
			t.Errorf("%q: copied %q, left %q", tc.in, out.String(), rest)
		}
	}
	if err := copyDotStream(io.Discard, bufio.NewReader(strings.NewReader("no end\r\n"))); err != io.ErrUnexpectedEOF {
		t.Errorf("unended stream: %v", err)
	}
}

func TestReadLongLine(t *testing.T) {
	long := strings.Repeat("y", 100)
	r := bufio.NewReaderSize(strings.NewReader(long+"\r\nshort\n"+long+"\n"), 16)
	if l, err := readLongLine(r, 1000); err != nil || l != long {
		t.Fatalf("%q %v", l, err)
	}
	if l, err := readLongLine(r, 1000); err != nil || l != "short" {
		t.Fatalf("%q %v", l, err)
	}
	if _, err := readLongLine(r, 50); err == nil {
		t.Fatal("an over-long line was taken")
	}
}
