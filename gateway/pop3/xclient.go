// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"net/netip"
	"strconv"
	"strings"
)

// maxSessionID bounds a forwarded session id.
const maxSessionID = 64

// xclient runs XCLIENT, Dovecot's POP3 extension by which a trusted peer
// (another proxy) forwards the real client: ADDR, PORT, SESSION and TTL;
// FORWARD and unknown attributes are ignored. As in Dovecot, an untrusted
// peer is answered +OK and ignored, and the greeting offers XCLIENT to
// trusted peers only.
func (ss *session) xclient(cmd *command) error {
	c := ss.c
	if !c.Trusted {
		return c.Printf("+OK You are not from trusted IP - ignoring")
	}
	args, ok := fields(cmd.args)
	if !ok {
		return ss.bad("Invalid parameters")
	}
	remote, session, ttl := c.Remote, c.Session, c.TTL
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch strings.ToUpper(k) {
		case "ADDR":
			ip, err := netip.ParseAddr(v)
			if err != nil {
				return ss.bad("Invalid parameters")
			}
			remote = netip.AddrPortFrom(ip.Unmap(), remote.Port())
		case "PORT":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return ss.bad("Invalid parameters")
			}
			remote = netip.AddrPortFrom(remote.Addr(), uint16(n))
		case "SESSION":
			if v == "" || len(v) > maxSessionID || !printable(v) {
				return ss.bad("Invalid parameters")
			}
			session = v
		case "TTL":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return ss.bad("Invalid parameters")
			}
			// A peer may lower the hop budget, never raise it.
			ttl = min(ttl, n)
		}
	}
	if remote != c.Remote && remote.Addr().IsValid() {
		c.Remote = remote
		c.Log = c.Log.With("remote", remote.String())
	}
	if session != c.Session {
		c.Session = session
		c.Log = c.Log.With("session", session)
	}
	c.TTL = ttl
	return c.Printf("+OK Updated")
}
