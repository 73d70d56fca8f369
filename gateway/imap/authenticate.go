// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// authenticate runs AUTHENTICATE mechanism [initial-response]
// (RFC 9051 6.2.2, SASL-IR RFC 4959).
func (ss *session) authenticate(ctx context.Context, cmd *command) (bool, error) {
	if len(cmd.args) < 1 {
		return false, ss.bad(cmd.tag, errCommand)
	}
	// imap-login takes the mechanism up to the first space, quotes and
	// all: a quoted name is no mechanism it knows.
	m, ok := mechs.Lookup(ss.srv.Mechs, cmd.args[0].s)
	if cmd.args[0].kind != argAtom || !ok || (m.NeedsTLS && !ss.c.TLS) {
		// imap-login shows the auth server's refusal as an alert.
		return false, ss.c.Printf("%s NO [ALERT] Unsupported authentication mechanism.", cmd.tag)
	}
	if m.Plaintext && !ss.c.PlaintextAllowed() {
		ss.c.Log.Info("plaintext authentication refused on an insecure connection", "method", m.Name)
		// The auth server's words (sasl-server.c), not LOGIN's.
		return false, ss.c.Printf("%s NO [PRIVACYREQUIRED] Plaintext authentication disabled.", cmd.tag)
	}
	var resp []byte // nil: no initial response
	if len(cmd.args) >= 2 {
		// imap-login takes the rest of the line as the initial
		// response: more than one argument is no base64.
		ir, ok := cmd.args[1].astring()
		if !ok || len(cmd.args) > 2 {
			return false, ss.bad(cmd.tag, "Invalid base64 data in initial response")
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
	o, err := ss.SASL(ctx, m, resp, gateway.PlusWire{C: ss.c}, tagged(cmd.tag))
	switch {
	case err == nil:
		return ss.proxyLogin(ctx, cmd.tag, m.Name, o)
	case errors.Is(err, gateway.ErrUnreadable):
		// To Dovecot a message the mechanism cannot read (PLAIN without
		// its NULs, an empty one) is a failed login.
		return false, ss.RefuseLogin("", cmd.tag+" NO [AUTHENTICATIONFAILED] Authentication failed.")
	case errors.Is(err, gateway.ErrCancelled):
		// RFC 9051 6.2.2: a cancelled exchange is rejected with BAD.
		return false, ss.bad(cmd.tag, "Authentication aborted by client.")
	case errors.Is(err, gateway.ErrResponseBase64):
		// Dovecot 2.3.19 (Debian's security backports) ends the exchange
		// as a failed login with this alert.
		return false, ss.RefuseLogin("", cmd.tag+" NO [ALERT] Invalid base64 in response")
	}
	if done, aerr := gateway.Answered(err); done {
		return false, aerr
	}
	return false, err
}
