// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// backend translates how the gateway reaches and logs in to backends.
func (t *translator) backend() *ymap {
	out := newMap()
	ports := newMap()
	if len(t.lmtpPorts) > 0 {
		// Dovecot's LMTP proxy dials backends on the port the client
		// came in on; maildirector on backend.ports.lmtp.
		distinct := map[int]bool{}
		for _, p := range t.lmtpPorts {
			distinct[p] = true
		}
		p, at := t.lmtpPorts[0], t.lmtpPortAt[0]
		switch {
		case len(distinct) > 1:
			var ps []string
			for x := range distinct {
				ps = append(ps, strconv.Itoa(x))
			}
			sort.Strings(ps)
			pos, key := Pos{File: t.cfg.Path, Line: 1}, "service lmtp"
			if at != nil {
				pos, key = at.Pos, at.Path()
			}
			t.note(pos, key, NeedsDecision, fmt.Sprintf("LMTP listeners on ports %s: Dovecot delivered to the backends on the port the client used; maildirector uses one, backend.ports.lmtp (24 unless set)", strings.Join(ps, ", ")))
		case p != 24:
			ports.integer("lmtp", p, strings.TrimSpace(t.from(at)+" (Dovecot's LMTP proxy dials the backends on the port the client used)"))
		}
	}
	out.add("ports", ports)

	if n := t.get("login_proxy_timeout"); n != nil {
		if d, ok := t.duration(n); ok {
			out.str("timeout", formatDuration(d), t.from(n))
		}
	}
	t.globalOnly("login_proxy_timeout", t.global["login_proxy_timeout"])
	if n := t.get("login_proxy_max_reconnects"); n != nil {
		r, err := strconv.Atoi(strings.TrimSpace(n.Value))
		switch {
		case err != nil || r < 0:
			t.noteNode(n, NeedsDecision, fmt.Sprintf("%q is not a count", n.Value))
		case r+1 > 10:
			out.integer("connect_attempts", 10, t.from(n))
			t.note(n.Pos, n.Key, NeedsDecision, "maildirector makes at most 10 connection attempts: 10 is written")
		default:
			out.integer("connect_attempts", r+1, t.from(n)+" (the first attempt and the reconnects)")
		}
	}
	t.globalOnly("login_proxy_max_reconnects", t.global["login_proxy_max_reconnects"])

	if n := t.get("ssl_client_ca_file"); n != nil {
		p := n.Value
		if n.File != "" {
			p = n.File
		}
		if p != "" {
			out.str("tls_ca_file", p, t.from(n))
		}
	}
	if n := t.get("ssl_client_ca_dir"); n != nil {
		switch strings.TrimRight(n.Value, "/") {
		case "":
		case "/etc/ssl/certs", "/etc/pki/tls/certs":
			t.noteNode(n, NotNeeded, "the system's CA directory: maildirector verifies backends against the system's roots unless backend.tls_ca_file is set")
		default:
			t.noteNode(n, NotSupported, "a CA directory: put the CAs in one PEM file and name it in backend.tls_ca_file")
		}
	}
	cert, key := t.get("ssl_client_cert"), t.get("ssl_client_key")
	switch {
	case cert != nil && key != nil:
		cp, kp := t.filePath(cert), t.filePath(key)
		if cp != "" && kp != "" {
			out.str("tls_cert", cp, t.from(cert))
			out.str("tls_key", kp, t.from(key))
		}
	case cert != nil || key != nil:
		for _, n := range []*Node{cert, key} {
			if n != nil {
				t.noteNode(n, NeedsDecision, "a client certificate for backends needs both ssl_client_cert and ssl_client_key")
			}
		}
	}

	if len(t.needMaster) > 0 {
		n := t.global["auth_mechanisms"]
		out.boolean("master_from_passdb", true, t.from(n))
		t.note(n.Pos, n.Key, NeedsDecision, fmt.Sprintf("%s never show the gateway the client's password, so the backend login is a master login; "+
			"Director needed the passdb to return master= and pass= for them, so backend.master_from_passdb: true is written: check that every passdb does, "+
			"or set backend.master_user and backend.master_password instead", strings.Join(t.needMaster, ", ")))
	}
	return out
}

func (t *translator) lmtp() *ymap {
	out := newMap()
	if len(t.lmtpPorts) == 0 {
		return out
	}
	proxy := t.forProtocol("lmtp", "lmtp_proxy")
	on := false
	if proxy != nil {
		on, _ = parseBool(proxy.Value)
	}
	switch {
	case on:
		t.noteNode(proxy, NotNeeded, "maildirector always proxies LMTP to the user's backend")
	case proxy != nil:
		t.noteNode(proxy, NeedsDecision, "Dovecot delivered LMTP mail on this host itself; maildirector always proxies it to the user's backend")
	default:
		t.note(Pos{File: t.cfg.Path, Line: 1}, "lmtp_proxy", NeedsDecision, "not set, so Dovecot delivered LMTP mail on this host itself; maildirector always proxies it to the user's backend")
	}
	if n := t.forProtocol("lmtp", "recipient_delimiter"); n != nil {
		out.str("recipient_delimiter", n.Value, t.from(n))
	}
	if n := t.forProtocol("lmtp", "hostname"); n != nil && n.Value != "" {
		out.str("hostname", n.Value, t.from(n))
	}
	return out
}

func (t *translator) sieve() *ymap {
	out := newMap()
	if !t.protocols["sieve"] {
		return out
	}
	if n := t.forProtocol("sieve", "managesieve_sieve_capability"); n != nil {
		out.str("extensions", n.Value, t.from(n))
	}
	if n := t.forProtocol("sieve", "managesieve_notify_capability"); n != nil {
		out.str("notify", n.Value, t.from(n))
	}
	return out
}

func (t *translator) limits() *ymap {
	out := newMap()
	if n := t.get("auth_failure_delay"); n != nil {
		if d, ok := t.duration(n); ok {
			out.str("auth_failure_delay", formatDuration(d), t.from(n))
		}
	}
	t.globalOnly("auth_failure_delay", t.global["auth_failure_delay"])

	// mail_max_userip_connections is a login process setting, often set
	// per protocol; maildirector has one limit for all.
	const key = "mail_max_userip_connections"
	values := map[int][]*Node{}
	var order []int
	for _, proto := range []string{"imap", "pop3", "sieve"} {
		if !t.protocols[proto] {
			continue
		}
		n := t.forProtocol(proto, key)
		if n == nil {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(n.Value))
		if err != nil || v < 0 {
			t.noteNode(n, NeedsDecision, fmt.Sprintf("%q is not a count", n.Value))
			continue
		}
		if _, ok := values[v]; !ok {
			order = append(order, v)
		}
		values[v] = append(values[v], n)
	}
	if len(order) > 0 {
		sort.Ints(order)
		most := order[len(order)-1]
		if order[0] == 0 {
			most = 0 // no limit somewhere: the most permissive
		}
		out.integer("max_userip_connections", most, t.from(values[most][0]))
		if len(order) > 1 {
			for _, v := range order {
				if v == most {
					continue
				}
				for _, n := range values[v] {
					t.note(n.Pos, n.Path(), NeedsDecision, fmt.Sprintf("maildirector has one limit for every protocol: the most permissive, %d, is written", most))
				}
			}
		}
	}
	t.globalOnly(key, t.global[key])
	return out
}
