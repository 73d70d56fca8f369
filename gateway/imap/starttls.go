// SPDX-License-Identifier: Apache-2.0

package imap

import "errors"

// starttls runs STARTTLS (RFC 9051 6.2.1). After the handshake the client
// must ask for capabilities again; nothing it sent before survives.
// Arguments are not looked at, as imap-login does not.
func (ss *session) starttls(cmd *command) error {
	if ss.c.TLS {
		return ss.bad(cmd.tag, "TLS is already active.")
	}
	if !ss.c.CanStartTLS() {
		return ss.bad(cmd.tag, "TLS support isn't enabled.")
	}
	if err := ss.c.Printf("%s OK Begin TLS negotiation now.", cmd.tag); err != nil {
		return err
	}
	if err := ss.c.StartTLS(); err != nil {
		return errors.Join(errStartTLS, err)
	}
	return nil
}

var errStartTLS = errors.New("STARTTLS failed")
