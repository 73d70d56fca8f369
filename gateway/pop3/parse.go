// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"errors"
	"strings"

	"github.com/maildirector/maildirector/gateway"
)

// command is one pre-login command line: a keyword and the rest of the
// line after the first space, verbatim. RFC 1939 3 separates arguments by
// single spaces, but PASS has exactly one argument that may itself hold
// spaces, so each command splits its own arguments.
type command struct {
	name string // upper case
	args string
	// hasArgs tells "USER" from "USER " (an empty argument).
	hasArgs bool
}

// maxKeyword bounds a keyword: RFC 1939 keywords are 3 or 4 characters,
// RFC 2449 extensions may be longer (XCLIENT).
const maxKeyword = 16

// errGarbage marks input that is not POP3 at all (NUL bytes, binary):
// the connection is closed.
var errGarbage = gateway.ErrGarbage

// errBadChars marks a command whose arguments hold a CR, which would
// change the line's meaning when passed on to a backend.
var errBadChars = errors.New("invalid characters in command line")

// parseCommand splits a line into keyword and arguments. A NUL anywhere,
// or a keyword that is not printable ASCII, is garbage; an unknown or
// over-long keyword is left for the caller to refuse.
func parseCommand(line []byte) (*command, error) {
	s := string(line)
	if strings.IndexByte(s, 0) >= 0 {
		return nil, errGarbage
	}
	name, args, hasArgs := strings.Cut(s, " ")
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f {
			return nil, errGarbage
		}
	}
	cmd := &command{name: strings.ToUpper(name), args: args, hasArgs: hasArgs}
	if len(name) > maxKeyword {
		cmd.name = ""
	}
	if strings.IndexByte(args, '\r') >= 0 {
		return cmd, errBadChars
	}
	return cmd, nil
}

// fields splits AUTH or XCLIENT arguments at single spaces; empty
// arguments (two spaces in a row, a trailing space) make it fail.
func fields(args string) ([]string, bool) {
	if args == "" {
		return nil, true
	}
	f := strings.Split(args, " ")
	for _, a := range f {
		if a == "" {
			return nil, false
		}
	}
	return f, true
}

// printable reports whether s is printable ASCII.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
