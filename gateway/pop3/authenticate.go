// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

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
	started := time.Now()
	ex := mechs.Begin(m, ss.srv.Pipeline.MechInfo(ctx, ss.c, "pop3"))
	for {
		challenge, done, err := ex.Next(resp)
		if errors.Is(err, mechs.ErrMalformed) {
			// To Dovecot a message the mechanism cannot read (PLAIN
			// without its NULs, an empty one) is a failed login.
			return false, ss.refuse(replyAuthFailed)
		}
		if err != nil {
			// The mechanism's lookup could not be made: a failure like
			// any other login's, not a reason to hang up.
			return false, ss.fail(ex.Outcome().User, started, err)
		}
		if done {
			break
		}
		if err := ss.c.Printf("+ %s", base64.StdEncoding.EncodeToString(challenge)); err != nil {
			return false, err
		}
		line, err := ss.c.ReadLine()
		if err != nil {
			ss.srv.Pipeline.LoginVerdict(ss.c, "pop3", ex.Outcome().User, "", started, fmt.Errorf("%w: %v", gateway.ErrAborted, err))
			return false, err
		}
		if string(line) == "*" {
			ss.srv.Pipeline.LoginVerdict(ss.c, "pop3", ex.Outcome().User, "", started, gateway.ErrAborted)
			// RFC 5034 4: a cancelled exchange is rejected with -ERR.
			return false, ss.bad("Authentication aborted by client.")
		}
		if resp, err = base64.StdEncoding.DecodeString(string(line)); err != nil {
			// Dovecot 2.3.19 (Debian's security backports) ends the
			// exchange as a failed login with these words.
			return false, ss.refuse("-ERR [AUTH] Invalid base64 in response")
		}
	}
	return ss.proxyLogin(ctx, m.Name, ex.Outcome())
}
