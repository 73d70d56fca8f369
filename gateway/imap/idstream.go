// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/maildirector/maildirector/gateway"
)

// ID is read as a stream, one parameter at a time, as Dovecot's
// imap-login does: its line may be far longer than any other pre-login
// command (clients and test suites send tens of KiB), and only each
// element is bounded — a key by RFC 2971's 30 octets, a value like any
// argument by the line limit — so memory stays bounded however many
// parameters come. Every other command is read as a line.

// isID reports whether line (a whole line or the head of a long one)
// starts "tag ID" followed by a space or its end, and returns what
// follows "ID".
func isID(line []byte) (rest []byte, ok bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return nil, false
	}
	after := line[sp+1:]
	if len(after) < 2 || !strings.EqualFold(string(after[:2]), "ID") {
		return nil, false
	}
	if len(after) > 2 && after[2] != ' ' {
		return nil, false
	}
	return after[2:], true
}

// idReader reads the ID command's arguments: first the bytes of the line
// already read, then the connection.
type idReader struct {
	head []byte
	r    *bufio.Reader
	ss   *session
	max  int // longest element
	// atEOL: the last byte read ended a line, so a refused command has
	// no more of its line to drop (the client may be waiting for us).
	atEOL bool
}

func (ir *idReader) readByte() (b byte, err error) {
	if len(ir.head) > 0 {
		b = ir.head[0]
		ir.head = ir.head[1:]
	} else if b, err = ir.r.ReadByte(); err != nil {
		return 0, err
	}
	ir.atEOL = b == '\n'
	return b, nil
}

func (ir *idReader) peek() (byte, error) {
	if len(ir.head) > 0 {
		return ir.head[0], nil
	}
	b, err := ir.r.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// errIDParams is Dovecot's answer to ID parameters it cannot take.
var errIDParams = &syntaxError{msg: "Invalid ID parameters", tagged: true}

// skipLine drops the rest of a refused command's line (bounded by the
// login deadline, not by memory: nothing is kept).
func (ir *idReader) skipLine() error {
	if ir.atEOL {
		return nil
	}
	for {
		b, err := ir.readByte()
		if err != nil {
			return err
		}
		if b == '\n' {
			return nil
		}
	}
}

// element reads one string or NIL (nil, true). An atom other than NIL is
// refused, as imap-login takes only strings as keys and strings or NIL as
// values.
func (ir *idReader) element() (s []byte, isNil bool, err error) {
	b, err := ir.peek()
	if err != nil {
		return nil, false, err
	}
	switch b {
	case '"':
		ir.readByte()
		var out []byte
		for {
			c, err := ir.readByte()
			if err != nil {
				return nil, false, err
			}
			switch c {
			case '"':
				return out, false, nil
			case '\\':
				if c, err = ir.readByte(); err != nil {
					return nil, false, err
				}
				if c != '"' && c != '\\' {
					return nil, false, errIDParams
				}
			case '\r', '\n':
				return nil, false, errIDParams
			case 0:
				return nil, false, errGarbage
			}
			if len(out) >= ir.max {
				return nil, false, gateway.ErrLineTooLong
			}
			out = append(out, c)
		}
	case '{':
		return ir.literal()
	}
	var out []byte
	for {
		c, err := ir.peek()
		if err != nil {
			return nil, false, err
		}
		if c == ' ' || c == ')' || c == '(' || c == '\r' || c == '\n' || c == '"' || c == '{' {
			break
		}
		if c < 0x20 || c == 0x7f {
			if c == 0 {
				return nil, false, errGarbage
			}
			return nil, false, errIDParams
		}
		ir.readByte()
		if len(out) >= ir.max {
			return nil, false, gateway.ErrLineTooLong
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, false, errIDParams
	}
	if strings.EqualFold(string(out), "NIL") {
		return nil, true, nil
	}
	return nil, false, errIDParams
}

// literal reads {n} or {n+}, CRLF, then n bytes (asking for them with a
// continuation when synchronizing).
func (ir *idReader) literal() ([]byte, bool, error) {
	ir.readByte() // '{'
	var spec []byte
	for {
		c, err := ir.readByte()
		if err != nil {
			return nil, false, err
		}
		if c == '}' {
			break
		}
		if len(spec) > 11 || c == '\r' || c == '\n' {
			return nil, false, errIDParams
		}
		spec = append(spec, c)
	}
	sync := true
	if s, ok := bytes.CutSuffix(spec, []byte("+")); ok {
		spec, sync = s, false
	}
	n, err := strconv.Atoi(string(spec))
	if err != nil || n < 0 {
		return nil, false, errIDParams
	}
	if c, err := ir.readByte(); err != nil || (c == '\r' && !ir.expect('\n')) || (c != '\r' && c != '\n') {
		if err != nil {
			return nil, false, err
		}
		return nil, false, errIDParams
	}
	if n > ir.max {
		if !sync {
			return nil, false, errLiteralTooBig
		}
		return nil, false, &syntaxError{msg: fmt.Sprintf("Error in IMAP command: Literal too large (max %d).", ir.max), tagged: true}
	}
	if sync {
		if err := ir.ss.c.Printf("+ OK"); err != nil {
			return nil, false, err
		}
	}
	out := make([]byte, n)
	k := copy(out, ir.head)
	ir.head = ir.head[k:]
	if _, err := io.ReadFull(ir.r, out[k:]); err != nil {
		return nil, false, err
	}
	// The command goes on after the literal, on the same logical line.
	ir.atEOL = false
	if bytes.IndexByte(out, 0) >= 0 {
		return nil, false, errGarbage
	}
	return out, false, nil
}

func (ir *idReader) expect(want byte) bool {
	c, err := ir.readByte()
	return err == nil && c == want
}

// eol reads the line's end: CRLF or a bare LF.
func (ir *idReader) eol() error {
	c, err := ir.readByte()
	if err != nil {
		return err
	}
	if c == '\r' {
		c, err = ir.readByte()
		if err != nil {
			return err
		}
	}
	if c != '\n' {
		return errIDParams
	}
	return nil
}

// readID reads ID's arguments (rest is what followed "ID" on the line
// read so far; more says the line goes on in the connection) and returns
// the parameters (keys lower-cased; NIL values as "").
func (ss *session) readID(rest []byte, more bool) (params map[string]string, err error) {
	head := append([]byte(nil), rest...) // rest lives in the reader's buffer
	if !more {
		head = append(head, '\r', '\n')
	}
	ir := &idReader{head: head, r: ss.c.R, ss: ss, max: ss.c.MaxLiteral()}
	defer func() {
		// A refused command's line is dropped so that the next one is
		// read from its start, as Dovecot's skip_line does.
		var se *syntaxError
		if errors.As(err, &se) {
			if serr := ir.skipLine(); serr != nil {
				err = serr
			}
		}
	}()
	b, err := ir.peek()
	if err != nil {
		return nil, err
	}
	if b == '\r' || b == '\n' {
		// ID without arguments: imap-login answers it like ID NIL.
		return map[string]string{}, ir.eol()
	}
	if !ir.expect(' ') {
		return nil, errIDParams
	}
	b, err = ir.peek()
	if err != nil {
		return nil, err
	}
	if b != '(' {
		_, isNil, err := ir.element()
		if err != nil {
			return nil, err
		}
		if !isNil {
			return nil, errIDParams
		}
		return map[string]string{}, ir.eol()
	}
	ir.readByte()
	params = map[string]string{}
	first := true
	for {
		c, err := ir.peek()
		if err != nil {
			return nil, err
		}
		if c == ')' {
			ir.readByte()
			// What follows the list is not looked at (imap-login stops
			// reading the command there).
			return params, ir.skipLine()
		}
		if !first && !ir.expect(' ') {
			return nil, errIDParams
		}
		first = false
		key, isNil, err := ir.element()
		if err != nil {
			return nil, err
		}
		if isNil || len(key) > maxIDKeyLen {
			return nil, errIDParams
		}
		if c, err := ir.peek(); err == nil && c == ')' {
			// A key without a value ends the list: Dovecot lets it be.
			continue
		}
		if !ir.expect(' ') {
			return nil, errIDParams
		}
		val, _, err := ir.element()
		if err != nil {
			return nil, err
		}
		// Only what the gateway uses is kept (the forwarding keys): the
		// rest is read and let go.
		if k := strings.ToLower(string(key)); forwardingKey(k) {
			params[k] = string(val)
		}
	}
}
