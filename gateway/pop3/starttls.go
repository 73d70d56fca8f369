// SPDX-License-Identifier: Apache-2.0

package pop3

import "errors"

// stls runs STLS (RFC 2595 4). After the handshake the client must ask
// for capabilities again, and nothing it said before counts: a USER given
// in cleartext is forgotten.
func (ss *session) stls() error {
	// Arguments are ignored, as pop3-login does.
	if ss.c.TLS {
		return ss.bad("TLS is already active.")
	}
	if !ss.c.CanStartTLS() {
		return ss.bad("TLS support isn't enabled.")
	}
	if err := ss.c.Printf("+OK Begin TLS negotiation now."); err != nil {
		return err
	}
	// ClientConn.StartTLS refuses bytes pipelined after STLS: they would
	// be cleartext injected into the TLS session.
	if err := ss.c.StartTLS(); err != nil {
		return errors.Join(errStartTLS, err)
	}
	ss.user, ss.hasUser = "", false
	return nil
}

var errStartTLS = errors.New("STLS failed")
