// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"strconv"
	"strings"

	"github.com/maildirector/maildirector/gateway"
)

// ManageSieve syntax (RFC 5804 4), as much as the dialogue before login
// needs: atoms, quoted strings with \" and \\ escapes, and literals. A
// client sends {n+} (RFC 5804 literal-c2s); {n} is accepted too, as
// Pigeonhole does, and neither gets a continuation: ManageSieve has none,
// so the literal's bytes follow at once. The same parser reads a backend's
// lines: capability data ("KEY" "value") and OK/NO/BYE responses with
// their response codes.

type argKind int

const (
	argAtom argKind = iota
	argString
)

type arg struct {
	kind argKind
	s    string
}

type command struct {
	name string // upper case
	args []arg
}

// syntaxError is a client mistake, answered with NO and counted as an
// invalid command.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

var (
	// errGarbage marks input that is not ManageSieve at all (NUL bytes,
	// binary, a TLS handshake): the connection is closed with BYE.
	errGarbage = gateway.ErrGarbage
	// errLiteralTooBig: a literal over the limit. Its bytes are already on
	// the way (ManageSieve literals never wait for a go-ahead), so the
	// connection cannot be resynchronised and is closed.
	errLiteralTooBig = gateway.ErrLiteralTooBig
)

// Bounds on one pre-login command, whatever its line and literal sizes:
// without them a client could pile up literals until the login timeout.
const (
	maxCommandBytes = 64 * 1024
	maxArgs         = 100
)

// lineSource supplies a literal's bytes and the line the command
// continues on after it.
type lineSource interface {
	literal(n int) ([]byte, error)
	nextLine() ([]byte, error)
}

const errCommand = "Error in MANAGESIEVE command received by server."

// parseCommand parses the command starting with line, reading literals and
// continuation lines from src.
func parseCommand(line []byte, src lineSource, maxLiteral int) (*command, error) {
	p, err := newParser(line, src, maxLiteral)
	if err != nil {
		return nil, err
	}
	name := p.atom()
	if !printable(name) {
		return nil, errGarbage
	}
	if name == "" {
		return nil, &syntaxError{msg: errCommand}
	}
	cmd := &command{name: strings.ToUpper(name)}
	if p.eol() {
		return cmd, nil
	}
	if !p.sp() {
		return cmd, &syntaxError{msg: errCommand}
	}
	cmd.args, err = p.args()
	return cmd, err
}

// parseArgs parses a line of arguments only: an AUTHENTICATE client
// response, or a backend's capability line.
func parseArgs(line []byte, src lineSource, maxLiteral int) ([]arg, error) {
	p, err := newParser(line, src, maxLiteral)
	if err != nil {
		return nil, err
	}
	if p.eol() {
		return nil, nil
	}
	return p.args()
}

func newParser(line []byte, src lineSource, maxLiteral int) (*parser, error) {
	if strings.IndexByte(string(line), 0) >= 0 {
		return nil, errGarbage
	}
	return &parser{line: string(line), src: src, maxLiteral: maxLiteral, total: len(line)}, nil
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
}

func (p *parser) eol() bool { return p.pos >= len(p.line) }

func (p *parser) peek() byte {
	if p.eol() {
		return 0
	}
	return p.line[p.pos]
}

func (p *parser) sp() bool {
	if p.peek() == ' ' {
		p.pos++
		return true
	}
	return false
}

// atom reads atom characters (RFC 5804 4: anything but SP, CTL and the
// specials).
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

// args reads arg *(SP arg) up to the end of the line. Like Pigeonhole's
// parser it lets spaces pile up (or trail), and a string needs no space
// after it: only two atoms must be apart, and they always are.
func (p *parser) args() ([]arg, error) {
	var out []arg
	for {
		for p.sp() {
		}
		if p.eol() {
			return out, nil
		}
		a, err := p.arg()
		if err != nil {
			return out, err
		}
		out = append(out, a)
		if len(out) > maxArgs {
			return out, &syntaxError{msg: "Too many arguments."}
		}
	}
}

func (p *parser) arg() (arg, error) {
	switch p.peek() {
	case '"', '{':
		s, err := p.string()
		return arg{kind: argString, s: s}, err
	}
	a := p.atom()
	if a == "" {
		return arg{}, &syntaxError{msg: "Missing or invalid argument."}
	}
	return arg{kind: argAtom, s: a}, nil
}

// string reads a quoted string or a literal.
func (p *parser) string() (string, error) {
	if p.peek() == '{' {
		return p.literal()
	}
	return p.quoted()
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
			if p.eol() || (p.line[p.pos] != '"' && p.line[p.pos] != '\\') {
				return "", &syntaxError{msg: "Escaped quoted-string character is not a QUOTED-SPECIAL."}
			}
			c = p.line[p.pos]
		}
		b.WriteByte(c)
		p.pos++
	}
	// Pigeonhole meets the line's CR inside the string.
	return "", &syntaxError{msg: "String contains invalid character."}
}

// literal reads "{n}" or "{n+}" at the end of the line, then n bytes, then
// the line the command continues on.
func (p *parser) literal() (string, error) {
	rest := p.line[p.pos:]
	end := strings.IndexByte(rest, '}')
	if end < 0 || p.pos+end+1 != len(p.line) {
		return "", &syntaxError{msg: "Missing LF after literal size"}
	}
	spec := strings.TrimSuffix(rest[1:end], "+")
	n, err := strconv.Atoi(spec)
	if err != nil || n < 0 || len(spec) > 10 || spec[0] == '+' || spec[0] == '-' {
		return "", &syntaxError{msg: "Invalid literal size"}
	}
	if n > p.maxLiteral || p.total+n > maxCommandBytes {
		return "", errLiteralTooBig
	}
	data, err := p.src.literal(n)
	if err != nil {
		return "", err
	}
	// Nothing before login needs a NUL; Pigeonhole refuses them in
	// strings too.
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

// response is a backend's reply line: a status with an optional response
// code (RFC 5804 1.3, 4), or capability data.
type response struct {
	status  string // "OK", "NO", "BYE"; "" for a data line
	code    string // response code atom, upper case ("TRYLATER", "SASL", ...)
	codeArg string // the code's string argument, if any
	text    string // human-readable text
	data    []arg  // a data line's arguments
}

// parseResponse parses one backend reply starting with line.
func parseResponse(line []byte, src lineSource, maxLiteral int) (*response, error) {
	p, err := newParser(line, src, maxLiteral)
	if err != nil {
		return nil, err
	}
	if c := p.peek(); c == '"' || c == '{' {
		data, err := p.args()
		return &response{data: data}, err
	}
	r := &response{status: strings.ToUpper(p.atom())}
	switch r.status {
	case "OK", "NO", "BYE":
	default:
		return nil, &syntaxError{msg: "Not a status or a string."}
	}
	if p.eol() {
		return r, nil
	}
	if !p.sp() {
		return nil, &syntaxError{msg: "Missing space after the status."}
	}
	if p.peek() == '(' {
		p.pos++
		r.code = strings.ToUpper(p.atom())
		if r.code == "" {
			return nil, &syntaxError{msg: "Empty response code."}
		}
		if p.sp() {
			if r.codeArg, err = p.string(); err != nil {
				return nil, err
			}
		}
		if p.peek() != ')' {
			return nil, &syntaxError{msg: "Missing ')' after the response code."}
		}
		p.pos++
		if p.eol() {
			return r, nil
		}
		if !p.sp() {
			return nil, &syntaxError{msg: "Missing space after the response code."}
		}
	}
	if r.text, err = p.string(); err != nil {
		return nil, err
	}
	if !p.eol() {
		return nil, &syntaxError{msg: "Junk after the response text."}
	}
	return r, nil
}

// maxQuoted is the longest quoted string RFC 5804 4 allows
// (quoted = DQUOTE *1024QUOTED-CHAR DQUOTE).
const maxQuoted = 1024

// quote returns s as a ManageSieve string: quoted when it may be, else a
// literal (literal-s2c: "{n}" CRLF and the bytes).
func quote(s string) string {
	if len(s) > maxQuoted || strings.ContainsAny(s, "\x00\r\n") {
		return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
