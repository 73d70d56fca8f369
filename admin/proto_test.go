// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestTabEscape(t *testing.T) {
	for _, s := range []string{"", "plain", "a\tb", "\001", "x\r\ny", "\001t", "tag\twith\001all\r\n"} {
		e := tabEscape(s)
		if strings.ContainsAny(e, "\t\r\n") {
			t.Errorf("tabEscape(%q) = %q keeps a separator", s, e)
		}
		if got := TabUnescape(e); got != s {
			t.Errorf("TabUnescape(tabEscape(%q)) = %q", s, got)
		}
	}
	// Dovecot's unescaping: \0010 is NUL, an unknown escape is the byte
	// itself, a trailing \001 is dropped.
	for in, want := range map[string]string{"a\0010b": "a\x00b", "\001x": "x", "ab\001": "ab", "\0011\001t": "\001\t"} {
		if got := TabUnescape(in); got != want {
			t.Errorf("TabUnescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitTabEscaped(t *testing.T) {
	for in, want := range map[string][]string{
		"":                    nil,
		"HOST-LIST":           {"HOST-LIST"},
		"HOST-FLUSH\t":        {"HOST-FLUSH", ""},
		"USER-KICK\ta\001tb":  {"USER-KICK", "a\tb"},
		"\t\t":                {"", "", ""},
		"USER-LOOKUP\tu\ttag": {"USER-LOOKUP", "u", "tag"},
	} {
		if got := splitTabEscaped(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitTabEscaped(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	good := map[string]request{
		"HOST-LIST":                          {verb: "HOST-LIST", vhosts: -1},
		"HOST-LIST\textra":                   {verb: "HOST-LIST", vhosts: -1},
		"HOST-SET\t127.0.0.11":               {verb: "HOST-SET", ip: "127.0.0.11", vhosts: -1},
		"HOST-SET\t127.0.0.11@b\t50":         {verb: "HOST-SET", ip: "127.0.0.11", tag: "b", vhosts: 50},
		"HOST-SET\t[::1]\t5000":              {verb: "HOST-SET", ip: "::1", vhosts: 5000},
		"HOST-UPDATE\t127.0.0.11\t0":         {verb: "HOST-UPDATE", ip: "127.0.0.11", vhosts: 0},
		"HOST-UP\t2001:db8:0::1":             {verb: "HOST-UP", ip: "2001:db8::1", vhosts: -1},
		"HOST-DOWN\t127.0.0.12":              {verb: "HOST-DOWN", ip: "127.0.0.12", vhosts: -1},
		"HOST-REMOVE\t127.0.0.12":            {verb: "HOST-REMOVE", ip: "127.0.0.12", vhosts: -1},
		"HOST-FLUSH":                         {verb: "HOST-FLUSH", vhosts: -1},
		"HOST-FLUSH\t":                       {verb: "HOST-FLUSH", vhosts: -1},
		"HOST-FLUSH\t127.0.0.12":             {verb: "HOST-FLUSH", ip: "127.0.0.12", vhosts: -1},
		"HOST-RESET-USERS":                   {verb: "HOST-RESET-USERS", vhosts: -1},
		"HOST-RESET-USERS\t\t10":             {verb: "HOST-RESET-USERS", vhosts: -1, maxParallel: 10},
		"HOST-RESET-USERS\t127.0.0.1\t3":     {verb: "HOST-RESET-USERS", ip: "127.0.0.1", vhosts: -1, maxParallel: 3},
		"USER-LOOKUP":                        {verb: "USER-LOOKUP", vhosts: -1},
		"USER-LOOKUP\tuser@x\ttag":           {verb: "USER-LOOKUP", user: "user@x", tag: "tag", vhosts: -1},
		"USER-LIST":                          {verb: "USER-LIST", vhosts: -1},
		"USER-LIST\t127.0.0.11":              {verb: "USER-LIST", ip: "127.0.0.11", vhosts: -1},
		"USER-MOVE\t1234\t127.0.0.11":        {verb: "USER-MOVE", user: "1234", ip: "127.0.0.11", vhosts: -1},
		"USER-KICK\tuser\001tx":              {verb: "USER-KICK", user: "user\tx", vhosts: -1},
		"USER-KICK\tuser\tnowait":            {verb: "USER-KICK", user: "user", nowait: true, vhosts: -1},
		"USER-KICK-ALT\tfield\tvalue":        {verb: "USER-KICK-ALT", field: "field", user: "value", vhosts: -1},
		"DIRECTOR-LIST":                      {verb: "DIRECTOR-LIST", vhosts: -1},
		"DIRECTOR-ADD\t10.0.0.1\t9090":       {verb: "DIRECTOR-ADD", ip: "10.0.0.1", port: 9090, vhosts: -1},
		"DIRECTOR-REMOVE\t10.0.0.1":          {verb: "DIRECTOR-REMOVE", ip: "10.0.0.1", vhosts: -1},
		"HOST-LIST-REMOVED":                  {verb: "HOST-LIST-REMOVED", vhosts: -1},
		"USER-MOVE\tuser@example.com\t::":    {verb: "USER-MOVE", user: "user@example.com", ip: "::", vhosts: -1},
		"HOST-SET\t127.0.0.11@tag@more\t100": {verb: "HOST-SET", ip: "127.0.0.11", tag: "tag@more", vhosts: 100},
	}
	for line, want := range good {
		got, err := parseRequest(line)
		if err != nil {
			t.Errorf("parseRequest(%q): %v", line, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parseRequest(%q) = %+v, want %+v", line, got, want)
		}
	}
	bad := []string{
		"", "\t", "host-list", "HOST-LIST ", "NOPE", "HOST-SET", "HOST-SET\tnot-an-ip", "HOST-SET\t127.0.0.11\t-1",
		"HOST-SET\t127.0.0.11\t+5", "HOST-SET\t127.0.0.11\t99999999999", "HOST-SET\t127.0.0.11\t1x", "HOST-UPDATE\t127.0.0.11",
		"HOST-UP", "HOST-UP\t", "HOST-DOWN\t300.1.1.1", "HOST-DOWN\tfe80::1%eth0", "HOST-REMOVE\thost.example",
		"HOST-FLUSH\tx", "HOST-RESET-USERS\t127.0.0.1\t0", "HOST-RESET-USERS\t\tx", "HOST-RESET-USERS\tbad",
		"USER-LIST\tbad", "USER-MOVE", "USER-MOVE\tu", "USER-MOVE\tu\tbad", "USER-KICK", "USER-KICK-ALT\tfield",
		"DIRECTOR-ADD", "DIRECTOR-ADD\t10.0.0.1\t0", "DIRECTOR-ADD\t10.0.0.1\t70000", "DIRECTOR-REMOVE\tx",
		"HOST-LIST\x00", "USER-KICK\tuser\x00",
	}
	for _, line := range bad {
		if r, err := parseRequest(line); err == nil {
			t.Errorf("parseRequest(%q) = %+v, want an error", line, r)
		}
	}
	if _, err := parseRequest("WHAT\targ"); !errors.Is(err, errUnknownCommand) {
		t.Errorf("unknown command: %v", err)
	}
}

func TestCheckHandshake(t *testing.T) {
	for line, want := range map[string]bool{
		"VERSION\tdirector-doveadm\t1\t0":    true,
		"VERSION\tdirector-doveadm\t1\t9":    true,
		"VERSION\tdirector-doveadm\t2\t0":    false,
		"VERSION\tdirector-doveadm\t1":       false,
		"VERSION\tdirector-doveadm\t1\tx":    false,
		"VERSION\tdoveadm-server\t1\t0":      false,
		"VERSION\tdirector-doveadmX\t1\t0":   false,
		"version\tdirector-doveadm\t1\t0":    false,
		"":                                   false,
		"VERSION\tdirector-doveadm\t01\t0":   true,
		"VERSION\tdirector-doveadm\t1\t0\tx": false,
	} {
		if got := checkHandshake(line); got != want {
			t.Errorf("checkHandshake(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("a\r\nb\n\nlast"), 16)
	for _, want := range []string{"a", "b", ""} {
		got, err := readLine(r)
		if err != nil || got != want {
			t.Fatalf("readLine = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := readLine(r); err != io.EOF {
		t.Fatalf("a last line without LF: %v, want EOF", err)
	}
	long := strings.Repeat("x", maxLine+10) + "\n"
	if _, err := readLine(bufio.NewReaderSize(strings.NewReader(long), 64)); !errors.Is(err, errLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	exact := strings.Repeat("x", maxLine) + "\n"
	if got, err := readLine(bufio.NewReaderSize(strings.NewReader(exact), 64)); err != nil || len(got) != maxLine {
		t.Fatalf("a line of maxLine bytes: %d, %v", len(got), err)
	}
}

func TestReplyText(t *testing.T) {
	for in, want := range map[string]string{"a\tb\nc": "a b c", "OK": "failed: OK", "": "failed: ", "NOTFOUND": "failed: NOTFOUND"} {
		if got := replyText(in); got != want {
			t.Errorf("replyText(%q) = %q, want %q", in, got, want)
		}
	}
}
