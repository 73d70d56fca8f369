// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// authenticate runs AUTHENTICATE mechanism [initial-response]
// (RFC 9051 6.2.2, SASL-IR RFC 4959).
func (ss *session) authenticate(ctx context.Context, cmd *command) (bool, error) {
	if len(cmd.args) < 1 || len(cmd.args) > 2 || cmd.args[0].kind != argAtom {
		return false, ss.bad(cmd.tag, "Error in IMAP command AUTHENTICATE: Invalid arguments.")
	}
	m, ok := mechs.Lookup(ss.srv.Mechs, cmd.args[0].s)
	if !ok || (m.NeedsTLS && !ss.c.TLS) {
		// imap-login shows the auth server's refusal as an alert.
		return false, ss.c.Printf("%s NO [ALERT] Unsupported authentication mechanism.", cmd.tag)
	}
	if m.Plaintext && !ss.c.PlaintextAllowed() {
		ss.c.Log.Info("plaintext authentication refused on an insecure connection", "method", m.Name)
		return false, ss.c.Printf("%s NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", cmd.tag)
	}
	var resp []byte // nil: no initial response
	if len(cmd.args) == 2 {
		ir, ok := cmd.args[1].astring()
		if !ok {
			return false, ss.bad(cmd.tag, "Error in IMAP command AUTHENTICATE: Invalid arguments.")
		}
		if ir == "=" { // RFC 4959: "=" is an empty initial response
			resp = []byte{}
		} else {
			var err error
			if resp, err = base64.StdEncoding.DecodeString(ir); err != nil {
				// Dovecot's auth server's words, without a full stop.
				return false, ss.bad(cmd.tag, "Invalid base64 data in initial response")
			}
		}
	}
	started := time.Now()
	ex := mechs.Begin(m, ss.srv.Pipeline.MechInfo(ctx, ss.c, "imap"))
	for {
		challenge, done, err := ex.Next(resp)
		if errors.Is(err, mechs.ErrMalformed) {
			// To Dovecot a message the mechanism cannot read (PLAIN
			// without its NULs, an empty one) is a failed login.
			return false, ss.refuse(cmd.tag, "NO [AUTHENTICATIONFAILED] Authentication failed.")
		}
		if err != nil {
			// The mechanism's lookup could not be made: a failure like
			// any other login's, not a reason to hang up.
			return false, ss.fail(cmd.tag, ex.Outcome().User, started, err)
		}
		if done {
			break
		}
		if err := ss.c.Printf("+ %s", base64.StdEncoding.EncodeToString(challenge)); err != nil {
			return false, err
		}
		line, err := ss.c.ReadLine()
		if err != nil {
			ss.srv.Pipeline.LoginVerdict(ss.c, "imap", ex.Outcome().User, "", started, fmt.Errorf("%w: %v", gateway.ErrAborted, err))
			return false, err
		}
		if string(line) == "*" {
			ss.srv.Pipeline.LoginVerdict(ss.c, "imap", ex.Outcome().User, "", started, gateway.ErrAborted)
			// RFC 9051 6.2.2: a cancelled exchange is rejected with BAD.
			return false, ss.bad(cmd.tag, "Authentication aborted by client.")
		}
		if resp, err = base64.StdEncoding.DecodeString(string(line)); err != nil {
			// Dovecot 2.3.19 (Debian's security backports) ends the
			// exchange as a failed login with this alert.
			return false, ss.refuse(cmd.tag, "NO [ALERT] Invalid base64 in response")
		}
	}
	return ss.proxyLogin(ctx, cmd.tag, m.Name, ex.Outcome())
}

// refuse ends a SASL exchange the client botched with reply, a failed
// login to Dovecot, and counts it like one.
func (ss *session) refuse(tag, reply string) error {
	ss.authFailures++
	if err := ss.c.Printf("%s %s", tag, reply); err != nil {
		return err
	}
	if ss.authFailures >= ss.srv.MaxAuthFailures {
		return errTooManyAuthFailures
	}
	return nil
}
