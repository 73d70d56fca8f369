// SPDX-License-Identifier: Apache-2.0

package sieve

import "errors"

// starttls runs STARTTLS (RFC 5804 2.2). After the handshake the server
// sends its capabilities again, unasked, since they may have changed (the
// plaintext mechanisms appear); nothing the client sent before survives.
func (ss *session) starttls(cmd *command) error {
	if len(cmd.args) != 0 {
		return ss.bad(errCommand)
	}
	if ss.c.TLS {
		return ss.c.Printf(`NO "TLS is already active."`)
	}
	if !ss.c.CanStartTLS() {
		return ss.c.Printf(`NO "TLS support isn't enabled."`)
	}
	if err := ss.c.Printf(`OK "Begin TLS negotiation now."`); err != nil {
		return err
	}
	if err := ss.c.StartTLS(); err != nil {
		return errors.Join(errStartTLS, err)
	}
	ss.writeCapabilities()
	return ss.c.Printf(`OK "TLS negotiation successful."`)
}

var errStartTLS = errors.New("STARTTLS failed")
