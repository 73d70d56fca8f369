// SPDX-License-Identifier: Apache-2.0

package director

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultVHosts is Dovecot's default vhost count per backend
// (VHOST_MULTIPLIER in src/director/mail-host.c).
const DefaultVHosts = 100

// MaxVHosts is the largest vhost count doveadm director accepts.
const MaxVHosts = 1000

// Host is one backend as the director sees it.
type Host struct {
	// IP is the backend's address as a string. Dovecot hashes this very
	// string into the ring, so it is the backend's identity: changing a
	// backend's IP moves its users.
	IP     string `json:"ip"`
	Tag    string `json:"tag,omitempty"`  // backend group ("" is the default group), Dovecot's @tag
	VHosts int    `json:"vhosts"`         // ring points; 0 drains the host of new users
	Down   bool   `json:"down,omitempty"` // down hosts get no new users either
}

// ParseHosts reads backend specs in the spirit of Dovecot's
// director_mail_servers: "IP", "IP@tag", a range "IP1-IP2" (with an
// optional "@tag" after it), each optionally followed by a space and a
// vhost count ("127.0.0.13 50"). Host names are not resolved: the ring
// hashes IP strings, so a name would silently change placement whenever
// DNS did.
func ParseHosts(specs []string) ([]Host, error) {
	var hosts []Host
	seen := map[string]bool{}
	for _, spec := range specs {
		fields := strings.Fields(spec)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("backend %q: want \"IP[@tag] [vhosts]\"", spec)
		}
		vhosts := DefaultVHosts
		if len(fields) == 2 {
			n, err := strconv.Atoi(fields[1])
			if err != nil || n < 0 || n > MaxVHosts {
				return nil, fmt.Errorf("backend %q: vhost count must be 0..%d", spec, MaxVHosts)
			}
			vhosts = n
		}
		addrs, tag, err := parseRange(fields[0])
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", spec, err)
		}
		for _, a := range addrs {
			ip := a.String()
			if seen[ip] {
				return nil, fmt.Errorf("backend %s listed twice", ip)
			}
			seen[ip] = true
			hosts = append(hosts, Host{IP: ip, Tag: tag, VHosts: vhosts})
		}
	}
	return hosts, nil
}

// maxRange bounds an IP range so that a typo cannot create millions of hosts.
const maxRange = 1024

func parseRange(s string) ([]netip.Addr, string, error) {
	s, tag, _ := strings.Cut(s, "@")
	first, last, isRange := strings.Cut(s, "-")
	a, err := netip.ParseAddr(first)
	if err != nil {
		return nil, "", fmt.Errorf("not an IP address: %q", first)
	}
	if !isRange {
		return []netip.Addr{a}, tag, nil
	}
	b, err := netip.ParseAddr(last)
	if err != nil {
		return nil, "", fmt.Errorf("not an IP address: %q", last)
	}
	if a.Is4() != b.Is4() || b.Less(a) {
		return nil, "", fmt.Errorf("bad range %s", s)
	}
	var out []netip.Addr
	for x := a; ; x = x.Next() {
		out = append(out, x)
		if len(out) > maxRange {
			return nil, "", fmt.Errorf("range %s has more than %d addresses", s, maxRange)
		}
		if x == b {
			break
		}
	}
	return out, tag, nil
}

// String renders h as "IP[@tag] vhosts [down]".
func (h Host) String() string {
	s := h.IP
	if h.Tag != "" {
		s += "@" + h.Tag
	}
	s += " " + strconv.Itoa(h.VHosts)
	if h.Down {
		s += " down"
	}
	return s
}
