// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"bufio"
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
)

// FuzzSplitLine: what the gateway routes is what the backend runs — a
// command line re-joined after parsing splits into the very same fields.
func FuzzSplitLine(f *testing.F) {
	for _, s := range []string{
		"\talice@example.com\tmailbox status\t-u\talice@example.com\t--\tmessages\tINBOX",
		"D\tu\x01tx\tcmd\x01", "\x01\t\x01", "", "\t\t", "a\x010b\x01n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fields := splitLine(line)
		if len(fields) < 3 {
			return // no command: the connection ends
		}
		again := splitLine(strings.TrimSuffix(joinLine(fields), "\n"))
		if !slices.Equal(fields, again) {
			t.Fatalf("%q: %q then %q", line, fields, again)
		}
		if cmd, _ := parseCommand(line); cmd != nil && cmd.name == "kick" {
			if user, at := kickUser(cmd.args); at >= 0 && cmd.args[at] != user {
				t.Fatalf("kick %q: user %q at %d", cmd.args, user, at)
			}
		}
	})
}

// FuzzDemux: any stream from a backend is read without a panic, and never
// yields more bytes than it holds.
func FuzzDemux(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x00\x05INBOX\x4c\x00\x00\x00\x02\x04x\x00\x00\x00\x00\x03\n+\n"), true)
	f.Add([]byte("\x00\xff\xff\xff\xffshort"), true)
	f.Add([]byte("plain\t\n+\n"), false)
	f.Fuzz(func(t *testing.T, raw []byte, mux bool) {
		d := &demux{r: bufio.NewReaderSize(bytes.NewReader(raw), 16), mux: mux}
		buf := make([]byte, 7)
		total := 0
		for i := 0; i < len(raw)+2; i++ {
			_, n, err := d.next(buf)
			total += n
			if err != nil {
				break
			}
		}
		if total > len(raw) {
			t.Fatalf("read %d bytes of %d", total, len(raw))
		}
	})
}

// FuzzCopyDotStream: the input copy stops exactly after the first line
// that is a lone dot, as a line-by-line reader would.
func FuzzCopyDotStream(f *testing.F) {
	f.Add("Subject: x\r\n\r\nbody\r\n\r\n.\r\n\tuser\tfetch\n")
	f.Add("..\r\n.\n")
	f.Add(strings.Repeat("a", 40) + ".\r\n.\r\nrest")
	f.Fuzz(func(t *testing.T, in string) {
		want, ok := "", false
		for rest := in; rest != ""; {
			line := rest
			if i := strings.IndexByte(rest, '\n'); i >= 0 {
				line = rest[:i+1]
			} else {
				break
			}
			want += line
			rest = rest[len(line):]
			if line == ".\n" || line == ".\r\n" {
				ok = true
				break
			}
		}
		var out bytes.Buffer
		err := copyDotStream(&out, bufio.NewReaderSize(strings.NewReader(in), 16))
		if ok != (err == nil) {
			t.Fatalf("%q: err %v, want end %v", in, err, ok)
		}
		if ok && out.String() != want {
			t.Fatalf("%q: copied %q, want %q", in, out.String(), want)
		}
		if !ok && err != io.ErrUnexpectedEOF {
			t.Fatalf("%q: %v", in, err)
		}
	})
}
