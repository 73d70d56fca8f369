// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// Reasons a front end hangs up on a client before login; Disconnect
// knows how to say each.
var (
	ErrGarbage             = errors.New("garbage received")
	ErrLiteralTooBig       = errors.New("literal too large")
	ErrTooManyBad          = errors.New("too many invalid commands")
	ErrTooManyAuthFailures = errors.New("too many authentication failures")
)

// Disconnect tells the client why it is being hung up on, when it can
// still hear it, and logs it. say writes one farewell in the protocol's
// form (IMAP "* BYE text", POP3 "-ERR text", ManageSieve BYE "text");
// tooManyBad is the protocol's own wording for ErrTooManyBad.
func Disconnect(c *ClientConn, err error, say func(text string), tooManyBad string) {
	// The login deadline covers writes too; give the farewell its own
	// moment, or a client that idled out would never read why.
	c.Conn().SetWriteDeadline(time.Now().Add(2 * time.Second))
	text, logMsg := farewell(err, tooManyBad)
	switch {
	case text != "":
		say(text)
		c.Log.Info(logMsg)
	case logMsg == "disconnected":
		c.Log.Info(logMsg, "reason", err)
	default: // the client left: nothing to say, little to log
		c.Log.Debug(logMsg)
	}
}

func farewell(err error, tooManyBad string) (text, logMsg string) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "Disconnected for inactivity.", "disconnected: login timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return "", "disconnected before login"
	case errors.Is(err, ErrLineTooLong):
		return "Too long command line.", "disconnected: line too long"
	case errors.Is(err, ErrGarbage):
		return "Garbage received.", "disconnected: garbage received"
	case errors.Is(err, ErrLiteralTooBig):
		return "Literal too large.", "disconnected: literal too large"
	case errors.Is(err, ErrTooManyBad):
		return tooManyBad, "disconnected: too many invalid commands"
	case errors.Is(err, ErrTooManyAuthFailures):
		return "Too many authentication failures.", "disconnected: too many authentication failures"
	}
	return "", "disconnected"
}

// OneLine keeps a database- or backend-supplied text (a nologin reason,
// a backend's refusal) from breaking a line-based protocol.
func OneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
