// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"errors"
	"net/netip"
	"strconv"
)

// maxIDKeyLen bounds an ID key (RFC 2971 3.3: 30 octets; Dovecot
// refuses longer ones). Values are bounded like any argument, by the line
// limit, and the number of parameters only by the login deadline, as in
// Dovecot: clients send long IDs, and each parameter is read and let go.
const maxIDKeyLen = 30

// forwardingKey reports whether an ID key is one the gateway takes from a
// trusted peer (Dovecot's x- forwarding keys).
func forwardingKey(k string) bool {
	switch k {
	case "x-originating-ip", "x-originating-port", "x-connected-ip", "x-connected-port", "x-session-id", "x-session-ext-id", "x-proxy-ttl":
		return true
	}
	return false
}

// id answers ID (RFC 2971) whose tag and line start the session has read
// (rest: what follows "ID"; more: the line goes on). From a trusted peer
// (another proxy or a load balancer) the Dovecot forwarding keys are
// honoured, so that logs and backends see the real client.
func (ss *session) id(tag string, rest []byte, more bool) error {
	params, err := ss.readID(rest, more)
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return ss.bad(tag, se.msg)
		}
		return err
	}
	if ss.c.Trusted {
		if _, ok := params["x-session-id"]; !ok && params["x-session-ext-id"] != "" {
			params["x-session-id"] = params["x-session-ext-id"]
		}
		ss.applyForwarded(params)
	}
	ss.c.Printf(`* ID ("name" "maildirector")`)
	return ss.c.Printf("%s OK ID completed.", tag)
}

// applyForwarded takes the client details a trusted proxy forwarded.
func (ss *session) applyForwarded(p map[string]string) {
	c := ss.c
	if ip, err := netip.ParseAddr(p["x-originating-ip"]); err == nil {
		port := c.Remote.Port()
		if n, err := strconv.ParseUint(p["x-originating-port"], 10, 16); err == nil {
			port = uint16(n)
		}
		c.Remote = netip.AddrPortFrom(ip.Unmap(), port)
	}
	if ip, err := netip.ParseAddr(p["x-connected-ip"]); err == nil {
		port := c.Local.Port()
		if n, err := strconv.ParseUint(p["x-connected-port"], 10, 16); err == nil {
			port = uint16(n)
		}
		c.Local = netip.AddrPortFrom(ip.Unmap(), port)
	}
	if s := p["x-session-id"]; s != "" && len(s) <= 64 && printable(s) {
		c.Session = s
	}
	if n, err := strconv.Atoi(p["x-proxy-ttl"]); err == nil && n >= 0 && n < c.TTL {
		c.TTL = n
	}
	c.Relog()
}
