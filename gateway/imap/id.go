// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"net/netip"
	"strconv"
	"strings"
)

// Limits on ID parameters (RFC 2971 3.3: at most 30 pairs, keys at most 30
// octets, values at most 1024).
const (
	maxIDPairs    = 30
	maxIDKeyLen   = 30
	maxIDValueLen = 1024
)

// id answers ID (RFC 2971). From a trusted peer (another proxy or a load
// balancer) the Dovecot forwarding keys are honoured, so that logs and
// backends see the real client.
func (ss *session) id(cmd *command) error {
	if len(cmd.args) != 1 || (cmd.args[0].kind != argNil && cmd.args[0].kind != argList) {
		return ss.bad(cmd.tag, "Error in IMAP command ID: Invalid arguments.")
	}
	list := cmd.args[0].list
	if len(list)%2 != 0 || len(list) > 2*maxIDPairs {
		return ss.bad(cmd.tag, "Error in IMAP command ID: Invalid parameter list.")
	}
	params := map[string]string{}
	for i := 0; i < len(list); i += 2 {
		k, ok := list[i].astring()
		if !ok || len(k) > maxIDKeyLen {
			return ss.bad(cmd.tag, "Error in IMAP command ID: Invalid parameter list.")
		}
		v := ""
		if list[i+1].kind != argNil {
			if v, ok = list[i+1].astring(); !ok || len(v) > maxIDValueLen {
				return ss.bad(cmd.tag, "Error in IMAP command ID: Invalid parameter list.")
			}
		}
		params[strings.ToLower(k)] = v
	}
	if ss.c.Trusted {
		ss.applyForwarded(params)
	}
	ss.c.Printf(`* ID ("name" "maildirector")`)
	return ss.c.Printf("%s OK ID completed.", cmd.tag)
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
