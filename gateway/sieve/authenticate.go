// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

const textEncryptNeeded = `NO (ENCRYPT-NEEDED) "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."`

// authenticate runs AUTHENTICATE "mechanism" [initial-response]
// (RFC 5804 2.1). Challenges go out as quoted base64 strings; the client
// answers each with a string (quoted or literal), or "*" to abort.
func (ss *session) authenticate(ctx context.Context, cmd *command) (bool, error) {
	// RFC 5804 2.1: auth-type and the initial response are strings.
	// managesieve-login reads the initial response alone and lets what
	// follows it be.
	if len(cmd.args) < 1 || cmd.args[0].kind != argString || cmd.args[0].s == "" {
		return false, ss.bad(errCommand)
	}
	if len(cmd.args) >= 2 && cmd.args[1].kind != argString {
		return false, ss.bad("Invalid AUTHENTICATE initial response.")
	}
	m, ok := mechs.Lookup(ss.srv.Mechs, cmd.args[0].s)
	if !ok || (m.NeedsTLS && !ss.c.TLS) {
		return false, ss.c.Printf(`NO "Unsupported authentication mechanism."`)
	}
	if m.Plaintext && !ss.c.PlaintextAllowed() {
		// RFC 5804 1.3: ENCRYPT-NEEDED, the client may retry after
		// STARTTLS.
		ss.c.Log.Info("plaintext authentication refused on an insecure connection", "method", m.Name)
		return false, ss.c.Printf(textEncryptNeeded)
	}
	var resp []byte // nil: no initial response
	if len(cmd.args) >= 2 {
		var err error
		// An empty string is an empty initial response.
		if resp, err = base64.StdEncoding.AppendDecode([]byte{}, []byte(cmd.args[1].s)); err != nil {
			// Dovecot's auth server's words, without a full stop.
			return false, ss.bad("Invalid base64 data in initial response")
		}
	}
	o, err := ss.SASL(ctx, m, resp, wire{ss}, failLine)
	var se *syntaxError
	switch {
	case err == nil:
		return ss.proxyLogin(ctx, m.Name, o)
	case errors.Is(err, gateway.ErrUnreadable):
		// To Dovecot a message the mechanism cannot read (PLAIN without
		// its NULs, an empty one) is a failed login.
		return false, ss.RefuseLogin("", textAuthFailed)
	case errors.Is(err, gateway.ErrCancelled):
		return false, ss.bad(msgAborted)
	case errors.Is(err, errResponseBase64):
		return false, ss.RefuseLogin("", `NO "Invalid base64 in response"`)
	case errors.As(err, &se):
		return false, ss.bad(se.msg)
	}
	if done, aerr := gateway.Answered(err); done {
		return false, aerr
	}
	return false, err
}

const msgAborted = "Authentication aborted by client."

// errResponseBase64: a client response that is not base64. Dovecot
// 2.3.19 (Debian's security backports) ends the exchange as a failed
// login.
var errResponseBase64 = &gateway.ClientMistake{Err: errors.New("invalid base64 in response")}

// wire carries SASL in ManageSieve (RFC 5804 2.1): challenges are quoted
// base64 strings; the client answers with a string, or "*".
type wire struct{ ss *session }

func (w wire) Challenge(data []byte) error {
	return w.ss.c.Printf("%s", quote(base64.StdEncoding.EncodeToString(data)))
}

func (w wire) Response() ([]byte, error) { return w.ss.clientResponse() }

// clientResponse reads the client's answer to a challenge: one string of
// base64. The string "*" aborts the exchange (RFC 5804 2.1).
func (ss *session) clientResponse() ([]byte, error) {
	line, err := ss.c.ReadLine()
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, &gateway.ClientMistake{Err: &syntaxError{msg: "Received empty AUTHENTICATE client response line."}}
	}
	args, err := parseArgs(line, ss, ss.c.MaxLiteral())
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return nil, &gateway.ClientMistake{Err: &syntaxError{msg: "Invalid AUTHENTICATE client response."}}
		}
		return nil, err
	}
	if len(args) != 1 || args[0].kind != argString {
		return nil, &gateway.ClientMistake{Err: &syntaxError{msg: "Invalid AUTHENTICATE client response."}}
	}
	if args[0].s == "*" {
		return nil, gateway.ErrCancelled
	}
	resp, err := base64.StdEncoding.AppendDecode([]byte{}, []byte(args[0].s))
	if err != nil {
		return nil, errResponseBase64
	}
	return resp, nil
}
