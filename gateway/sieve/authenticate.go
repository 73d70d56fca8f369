// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

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
	started := time.Now()
	ex := mechs.Begin(m, ss.srv.Pipeline.MechInfo(ctx, ss.c, "sieve"))
	for {
		challenge, done, err := ex.Next(resp)
		if errors.Is(err, mechs.ErrMalformed) {
			// To Dovecot a message the mechanism cannot read (PLAIN
			// without its NULs, an empty one) is a failed login.
			return false, ss.refuse(textAuthFailed)
		}
		if err != nil {
			// The mechanism's lookup could not be made: a failure like
			// any other login's, not a reason to hang up.
			return false, ss.fail(ex.Outcome().User, started, err)
		}
		if done {
			break
		}
		if err := ss.c.Printf("%s", quote(base64.StdEncoding.EncodeToString(challenge))); err != nil {
			return false, err
		}
		if resp, err = ss.clientResponse(); err != nil {
			var se *syntaxError
			if errors.As(err, &se) && se.msg == msgAborted || !errors.As(err, &se) {
				ss.srv.Pipeline.LoginVerdict(ss.c, "sieve", ex.Outcome().User, "", started, fmt.Errorf("%w: %v", gateway.ErrAborted, err))
			}
			if errors.Is(err, errResponseBase64) {
				return false, ss.refuse(`NO "Invalid base64 in response"`)
			}
			if errors.As(err, &se) {
				return false, ss.bad(se.msg)
			}
			return false, err
		}
	}
	return ss.proxyLogin(ctx, m.Name, ex.Outcome())
}

const msgAborted = "Authentication aborted by client."

// errResponseBase64: a client response that is not base64. Dovecot
// 2.3.19 (Debian's security backports) ends the exchange as a failed
// login.
var errResponseBase64 = &syntaxError{msg: "Invalid base64 in response"}

// refuse answers a SASL exchange the client botched with line, a failed
// login to Dovecot, and counts it like one.
func (ss *session) refuse(line string) error {
	ss.authFailures++
	if err := ss.c.Printf("%s", line); err != nil {
		return err
	}
	if ss.authFailures >= ss.srv.MaxAuthFailures {
		return errTooManyAuthFailures
	}
	return nil
}

// clientResponse reads the client's answer to a challenge: one string of
// base64. The string "*" aborts the exchange (RFC 5804 2.1).
func (ss *session) clientResponse() ([]byte, error) {
	line, err := ss.c.ReadLine()
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, &syntaxError{msg: "Received empty AUTHENTICATE client response line."}
	}
	args, err := parseArgs(line, ss, ss.c.MaxLiteral())
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return nil, &syntaxError{msg: "Invalid AUTHENTICATE client response."}
		}
		return nil, err
	}
	if len(args) != 1 || args[0].kind != argString {
		return nil, &syntaxError{msg: "Invalid AUTHENTICATE client response."}
	}
	if args[0].s == "*" {
		return nil, &syntaxError{msg: msgAborted}
	}
	resp, err := base64.StdEncoding.AppendDecode([]byte{}, []byte(args[0].s))
	if err != nil {
		return nil, errResponseBase64
	}
	return resp, nil
}
