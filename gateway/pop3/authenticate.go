// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// auth runs AUTH mechanism [initial-response] (RFC 5034). Without a
// mechanism it lists the mechanisms offered now, as Dovecot does (the
// RFC 1734 form some clients still send). As in pop3-login, the mechanism
// ends at the first space and the rest of the line is the initial
// response, whatever it holds.
func (ss *session) auth(ctx context.Context, cmd *command) (bool, error) {
	name, ir, _ := strings.Cut(cmd.args, " ")
	if name == "" {
		lines := append(append([]string{"+OK"}, ss.mechanisms()...), ".")
		return false, ss.c.Printf("%s", strings.Join(lines, "\r\n"))
	}
	m, ok := mechs.Lookup(ss.srv.Mechs, name)
	if !ok || (m.NeedsTLS && !ss.c.TLS) {
		return false, ss.c.Printf("-ERR [AUTH] Unsupported authentication mechanism.")
	}
	if m.Plaintext && !ss.c.PlaintextAllowed() {
		ss.c.Log.Info("plaintext authentication refused on an insecure connection", "method", m.Name)
		return false, ss.c.Printf(plaintextDisallowed)
	}
	var resp []byte // nil: no initial response
	if ir != "" {
		if ir == "=" { // RFC 5034 4: "=" is an empty initial response
			resp = []byte{}
		} else {
			var err error
			if resp, err = base64.StdEncoding.DecodeString(ir); err != nil {
				// Dovecot's auth server's words, as a login failure.
				return false, ss.bad("[AUTH] Invalid base64 data in initial response")
			}
		}
	}
	o, err := ss.SASL(ctx, m, resp, gateway.PlusWire{C: ss.c}, failLine)
	switch {
	case err == nil:
		return ss.proxyLogin(ctx, m.Name, o)
	case errors.Is(err, gateway.ErrUnreadable):
		// To Dovecot a message the mechanism cannot read (PLAIN without
		// its NULs, an empty one) is a failed login.
		return false, ss.RefuseLogin("", replyAuthFailed)
	case errors.Is(err, gateway.ErrCancelled):
		// RFC 5034 4: a cancelled exchange is rejected with -ERR.
		return false, ss.bad("Authentication aborted by client.")
	case errors.Is(err, gateway.ErrResponseBase64):
		// Dovecot 2.3.19 (Debian's security backports) ends the exchange
		// as a failed login with these words.
		return false, ss.RefuseLogin("", "-ERR [AUTH] Invalid base64 in response")
	}
	if done, aerr := gateway.Answered(err); done {
		return false, aerr
	}
	return false, err
}
