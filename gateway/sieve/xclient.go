// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"net/netip"
	"strconv"
	"strings"
)

// xclient runs XCLIENT from a trusted peer (another proxy in front of the
// gateway): Pigeonhole's way of forwarding the real client's address,
// session id and proxy TTL. Unknown keys (FORWARD, DESTADDR, ...) are
// ignored, as Pigeonhole 0.5 does; a malformed known one refuses the
// whole command.
func (ss *session) xclient(cmd *command) error {
	c := ss.c
	remote, session, ttl := c.Remote, c.Session, c.TTL
	for _, a := range cmd.args {
		k, v, ok := strings.Cut(a.s, "=")
		if a.kind != argAtom || !ok {
			return ss.bad(errCommand)
		}
		var err error
		switch strings.ToUpper(k) {
		case "ADDR":
			var ip netip.Addr
			if ip, err = netip.ParseAddr(v); err == nil {
				remote = netip.AddrPortFrom(ip.Unmap(), remote.Port())
			}
		case "PORT":
			var n uint64
			if n, err = strconv.ParseUint(v, 10, 16); err == nil {
				remote = netip.AddrPortFrom(remote.Addr(), uint16(n))
			}
		case "SESSION":
			// Dovecot keeps session ids of up to 64 characters.
			if v != "" && len(v) <= 64 && printable(v) {
				session = v
			}
		case "TTL":
			var n int
			if n, err = strconv.Atoi(v); err == nil && n >= 0 && n < ttl {
				ttl = n
			}
		}
		if err != nil {
			return ss.bad(errCommand)
		}
	}
	if remote != c.Remote {
		c.Remote = remote
		c.Log = c.Log.With("remote", remote.String())
	}
	if session != c.Session {
		c.Session = session
		c.Log = c.Log.With("session", session)
	}
	c.TTL = ttl
	return c.Printf(`OK "Updated"`)
}
