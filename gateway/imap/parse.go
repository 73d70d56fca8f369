// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/maildirector/maildirector/gateway"
)

// Pre-login parser. It knows just enough IMAP syntax for the commands a
// client may send before login: atoms, quoted strings, literals ({n} and
// the LITERAL+ {n+} form), NIL and parenthesized lists (for ID).

type argKind int

const (
	argAtom argKind = iota
	argString
	argNil
	argList
)

type arg struct {
	kind argKind
	s    string
	list []arg
}

// astring returns the argument as an IMAP astring (atom or string).
func (a arg) astring() (string, bool) {
	if a.kind == argAtom || a.kind == argString {
		return a.s, true
	}
	return "", false
}

// loginString returns the argument as LOGIN takes it: an astring, or
// NIL as the name "NIL" (imap-login reads it as a string).
func (a arg) loginString() (string, bool) {
	if a.kind == argNil {
		return "NIL", true
	}
	return a.astring()
}

// errCommand is imap-login's answer to a command it cannot read.
const errCommand = "Error in IMAP command received by server."

type command struct {
	tag  string
	name string // upper case
	args []arg
}

// syntaxError is a client mistake answered with BAD; tagged reports
// whether the tag was read, so that the reply can carry it.
type syntaxError struct {
	msg    string
	tagged bool
}

func (e *syntaxError) Error() string { return e.msg }

// errGarbage marks input that is not IMAP at all (NUL bytes, binary):
// the connection is closed with BYE.
var errGarbage = gateway.ErrGarbage

const maxListDepth = 4

// Bounds on one pre-login command, whatever its line and literal sizes:
// without them a client could pile up literals until the login timeout.
const (
	maxCommandBytes = 64 * 1024
	maxArgs         = 100
)

// lineSource supplies the next line of a command that continues after a
// literal, and the literal's bytes. sync tells whether the client waits
// for a continuation before sending them.
type lineSource interface {
	literal(n int, sync bool) ([]byte, error)
	nextLine() ([]byte, error)
}

// parseCommand parses the command starting with line, reading literal
// data and continuation lines from src.
func parseCommand(line []byte, src lineSource, maxLiteral int) (*command, error) {
	for _, b := range line {
		if b == 0 {
			return nil, errGarbage
		}
	}
	p := &parser{line: string(line), src: src, maxLiteral: maxLiteral, total: len(line)}
	tag := p.atom()
	// RFC 9051 9: tag = 1*<any ASTRING-CHAR except "+">; "*" and "%" are
	// list wildcards, and a "*" tag would read like an untagged reply.
	if tag == "" || strings.ContainsAny(tag, "+*%") || !printable(tag) {
		if !printable(tag) {
			return nil, errGarbage
		}
		return nil, &syntaxError{msg: "Error in IMAP command received by server."}
	}
	cmd := &command{tag: tag}
	if !p.sp() {
		return cmd, &syntaxError{msg: "Error in IMAP command received by server.", tagged: true}
	}
	name := p.atom()
	if name == "" || !printable(name) {
		return cmd, &syntaxError{msg: "Error in IMAP command received by server.", tagged: true}
	}
	cmd.name = strings.ToUpper(name)
	for !p.eol() {
		if !p.sp() {
			return cmd, &syntaxError{msg: "Error in IMAP command: Missing space.", tagged: true}
		}
		a, err := p.arg(0)
		if err != nil {
			return cmd, err
		}
		cmd.args = append(cmd.args, a)
		if len(cmd.args) > maxArgs {
			return cmd, &syntaxError{msg: "Error in IMAP command: Too many arguments.", tagged: true}
		}
	}
	return cmd, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

type parser struct {
	line       string
	pos        int
	src        lineSource
	maxLiteral int
	total      int // bytes of the command so far, literals included
	nargs      int // arguments so far, list members included
}

func (p *parser) eol() bool { return p.pos >= len(p.line) }

func (p *parser) sp() bool {
	if p.pos < len(p.line) && p.line[p.pos] == ' ' {
		p.pos++
		return true
	}
	return false
}

// atom reads atom characters; ']' is allowed, as in astrings.
func (p *parser) atom() string {
	start := p.pos
	for p.pos < len(p.line) {
		c := p.line[p.pos]
		if c <= ' ' || c == 0x7f || c == '(' || c == ')' || c == '{' || c == '"' || c == '\\' {
			break
		}
		p.pos++
	}
	return p.line[start:p.pos]
}

func (p *parser) arg(depth int) (arg, error) {
	p.nargs++
	if p.nargs > maxArgs {
		return arg{}, &syntaxError{msg: "Error in IMAP command: Too many arguments.", tagged: true}
	}
	if p.eol() {
		return arg{}, &syntaxError{msg: "Error in IMAP command: Missing argument.", tagged: true}
	}
	switch p.line[p.pos] {
	case '"':
		s, err := p.quoted()
		return arg{kind: argString, s: s}, err
	case '{':
		s, err := p.literal()
		return arg{kind: argString, s: s}, err
	case '(':
		if depth >= maxListDepth {
			return arg{}, &syntaxError{msg: "Error in IMAP command: Too deep lists.", tagged: true}
		}
		p.pos++
		var list []arg
		for {
			if p.eol() {
				return arg{}, &syntaxError{msg: "Error in IMAP command: Missing ')'.", tagged: true}
			}
			if p.line[p.pos] == ')' {
				p.pos++
				return arg{kind: argList, list: list}, nil
			}
			if len(list) > 0 && !p.sp() {
				return arg{}, &syntaxError{msg: "Error in IMAP command: Missing space.", tagged: true}
			}
			a, err := p.arg(depth + 1)
			if err != nil {
				return arg{}, err
			}
			list = append(list, a)
		}
	}
	a := p.atom()
	if a == "" {
		return arg{}, &syntaxError{msg: "Error in IMAP command: Invalid characters in atom.", tagged: true}
	}
	if strings.EqualFold(a, "NIL") {
		return arg{kind: argNil}, nil
	}
	return arg{kind: argAtom, s: a}, nil
}

func (p *parser) quoted() (string, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.line) {
		c := p.line[p.pos]
		switch c {
		case '"':
			p.pos++
			return b.String(), nil
		case '\\':
			p.pos++
			if p.pos >= len(p.line) || (p.line[p.pos] != '"' && p.line[p.pos] != '\\') {
				return "", &syntaxError{msg: "Error in IMAP command: Invalid escape in quoted string.", tagged: true}
			}
			c = p.line[p.pos]
		case '\r', '\n':
			return "", &syntaxError{msg: "Error in IMAP command: CR/LF in quoted string.", tagged: true}
		}
		b.WriteByte(c)
		p.pos++
	}
	return "", &syntaxError{msg: "Error in IMAP command: Missing '\"'.", tagged: true}
}

// literal reads "{n}" or "{n+}" at the end of the line, then n bytes, then
// the line the command continues on (RFC 9051 4.3, RFC 7888).
func (p *parser) literal() (string, error) {
	rest := p.line[p.pos:]
	end := strings.IndexByte(rest, '}')
	if end < 0 || p.pos+end+1 != len(p.line) {
		return "", &syntaxError{msg: "Error in IMAP command: Broken literal.", tagged: true}
	}
	spec := rest[1:end]
	sync := true
	if s, ok := strings.CutSuffix(spec, "+"); ok {
		spec, sync = s, false
	}
	n, err := strconv.Atoi(spec)
	if err != nil || n < 0 || len(spec) > 10 {
		return "", &syntaxError{msg: "Error in IMAP command: Broken literal size.", tagged: true}
	}
	if n > p.maxLiteral || p.total+n > maxCommandBytes {
		if !sync {
			// The client sends the bytes regardless; we cannot resync.
			return "", errLiteralTooBig
		}
		return "", &syntaxError{msg: fmt.Sprintf("Error in IMAP command: Literal too large (max %d).", p.maxLiteral), tagged: true}
	}
	data, err := p.src.literal(n, sync)
	if err != nil {
		return "", err
	}
	// RFC 9051 4.3: a literal is CHAR8 without NUL (only literal8 may
	// carry NUL, and nothing before login needs one).
	if strings.IndexByte(string(data), 0) >= 0 {
		return "", errGarbage
	}
	next, err := p.src.nextLine()
	if err != nil {
		return "", err
	}
	if strings.IndexByte(string(next), 0) >= 0 {
		return "", errGarbage
	}
	p.total += n + len(next)
	if p.total > maxCommandBytes {
		return "", errLiteralTooBig
	}
	p.line, p.pos = string(next), 0
	return string(data), nil
}

// errLiteralTooBig: a non-synchronizing literal over the limit; the
// connection must be closed because its bytes are already on the way.
var errLiteralTooBig = gateway.ErrLiteralTooBig
