// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// trust translates who may send PROXY headers and forward client
// addresses, and whether plaintext logins are allowed without TLS.
func (t *translator) trust() (beforeTLS, afterTLS *ymap) {
	beforeTLS, afterTLS = newMap(), newMap()
	hp := t.get("haproxy_trusted_networks")
	if nets := t.networks(hp); len(nets) > 0 {
		beforeTLS.list("haproxy_trusted_networks", nets, []string{t.from(hp)})
	}
	t.globalOnly("haproxy_trusted_networks", hp)
	if d, ok := t.duration(t.get("haproxy_timeout")); ok {
		beforeTLS.str("haproxy_timeout", formatDuration(d), t.from(t.global["haproxy_timeout"]))
	}
	t.globalOnly("haproxy_timeout", t.global["haproxy_timeout"])

	lt := t.get("login_trusted_networks")
	if nets := t.networks(lt); len(nets) > 0 {
		afterTLS.list("trusted_networks", nets, []string{t.from(lt)})
	}
	t.globalOnly("login_trusted_networks", lt)

	dpa := t.get("disable_plaintext_auth")
	disable := true
	if dpa != nil {
		b, err := parseBool(dpa.Value)
		if err != nil {
			t.noteNode(dpa, NeedsDecision, err.Error()+"; Dovecot's default yes is assumed")
		} else {
			disable = b
		}
	}
	switch {
	case t.sslMode == "required":
		// ssl = required forbids plaintext without TLS whatever
		// disable_plaintext_auth says.
		afterTLS.boolean("allow_plaintext", false, t.from(t.global["ssl"], dpa))
	case dpa != nil:
		afterTLS.boolean("allow_plaintext", !disable, t.from(dpa))
	}
	t.globalOnly("disable_plaintext_auth", dpa)
	return beforeTLS, afterTLS
}

// networks reads a list of addresses and CIDR prefixes, noting the
// entries maildirector would refuse.
func (t *translator) networks(n *Node) []string {
	if n == nil {
		return nil
	}
	var out []string
	for _, w := range splitList(n.Value) {
		var err error
		if strings.Contains(w, "/") {
			_, err = netip.ParsePrefix(w)
		} else {
			_, err = netip.ParseAddr(w)
		}
		if err != nil {
			t.note(n.Pos, n.Path(), NeedsDecision, fmt.Sprintf("%s is neither an address nor a CIDR prefix: left out", w))
			continue
		}
		out = append(out, w)
	}
	return out
}

// duration reads a Dovecot time, noting a bad one.
func (t *translator) duration(n *Node) (time.Duration, bool) {
	if n == nil {
		return 0, false
	}
	d, err := parseTime(n.Value)
	if err != nil {
		t.noteNode(n, NeedsDecision, err.Error())
		return 0, false
	}
	return d, true
}

// Mechanisms by what they need from the rest of the configuration.
var (
	mechPlaintext = map[string]bool{"plain": true, "login": true, "oauthbearer": true, "xoauth2": true}
	// mechMaster never show the gateway the client's password, so the
	// backend login must be a master login (config check refuses them
	// otherwise).
	mechMaster = map[string]bool{"cram-md5": true, "digest-md5": true, "scram-sha-1": true, "scram-sha-256": true,
		"scram-sha-1-plus": true, "scram-sha-256-plus": true, "anonymous": true, "external": true}
)

func (t *translator) auth() *ymap {
	out := newMap()
	for _, k := range []struct{ dovecot, ours string }{
		{"auth_default_realm", "default_realm"},
		{"auth_username_format", "username_format"},
		{"auth_master_user_separator", "master_user_separator"},
		{"auth_username_chars", "username_chars"},
	} {
		n := t.get(k.dovecot)
		t.globalOnly(k.dovecot, n)
		if n == nil {
			continue
		}
		if k.dovecot == "auth_default_realm" && strings.ContainsAny(n.Value, "@ \t") {
			t.noteNode(n, NeedsDecision, "a realm is a domain, without @ or spaces")
			continue
		}
		if k.dovecot == "auth_username_format" && n.Value == "" {
			// Empty, Dovecot leaves names as they are; maildirector
			// reads empty as its default, %Lu.
			out.str(k.ours, "%u", t.from(n)+" (empty: names as given)")
			continue
		}
		out.str(k.ours, n.Value, t.from(n))
	}
	t.mechanisms(out)
	if n := t.get("auth_anonymous_username"); n != nil {
		out.str("anonymous_username", n.Value, t.from(n))
	}
	if n := t.get("auth_realms"); n != nil {
		realms := splitList(n.Value)
		switch len(realms) {
		case 0:
		case 1:
			out.str("realm", realms[0], t.from(n))
		default:
			out.str("realm", realms[0], t.from(n))
			t.note(n.Pos, n.Key, NeedsDecision, "DIGEST-MD5 offers one realm in maildirector: "+realms[0]+" is written, the others are not")
		}
	}

	cache := newMap()
	if n := t.get("auth_cache_size"); n != nil {
		if size, err := parseSize(n.Value); err != nil {
			t.noteNode(n, NeedsDecision, err.Error())
		} else {
			cache.str("size", formatSize(size), t.from(n))
		}
	}
	for _, k := range []struct{ dovecot, ours string }{{"auth_cache_ttl", "ttl"}, {"auth_cache_negative_ttl", "negative_ttl"}} {
		n := t.get(k.dovecot)
		if d, ok := t.duration(n); ok {
			cache.str(k.ours, formatDuration(d), t.from(n))
		}
	}
	out.add("cache", cache)
	return out
}

func (t *translator) mechanisms(out *ymap) {
	n := t.get("auth_mechanisms")
	t.globalOnly("auth_mechanisms", n)
	if n == nil {
		// Dovecot offers PLAIN alone by default; maildirector's own
		// default adds LOGIN.
		out.str("mechanisms", "plain", "Dovecot's default")
		return
	}
	var keep []string
	seen := map[string]bool{}
	for _, m := range splitList(strings.ToLower(n.Value)) {
		if seen[m] {
			continue
		}
		seen[m] = true
		switch {
		case strings.HasSuffix(m, "-plus") && mechMaster[m] && !t.haveCert:
			t.note(n.Pos, n.Key, NeedsDecision, m+" needs TLS, which is not configured: left out")
		case m == "external" && !t.clientCA:
			t.note(n.Pos, n.Key, NeedsDecision, "external needs verified client certificates (ssl_ca with ssl_verify_client_cert = yes): left out")
		case mechPlaintext[m] || mechMaster[m]:
			keep = append(keep, m)
			if mechMaster[m] {
				t.needMaster = append(t.needMaster, m)
			}
		default:
			t.note(n.Pos, n.Key, NotSupported, m+": maildirector does not offer it: left out")
		}
	}
	if len(keep) == 0 {
		t.note(n.Pos, n.Key, NeedsDecision, "no mechanism is left: maildirector's default, plain login, applies")
		return
	}
	out.str("mechanisms", strings.Join(keep, " "), t.from(n))
	if t.sslMode == "required" {
		var clear []string
		for _, m := range keep {
			if !mechPlaintext[m] && !strings.HasSuffix(m, "-plus") && m != "external" {
				clear = append(clear, m)
			}
		}
		if len(clear) > 0 {
			ssl := t.global["ssl"]
			t.note(ssl.Pos, ssl.Key, NeedsDecision, fmt.Sprintf("ssl = required: Dovecot wanted TLS before any authentication; maildirector wants it for plaintext mechanisms only and lets %s through on cleartext connections", strings.Join(clear, " ")))
		}
	}
}

// Values Dovecot's passdb and userdb enumerations take; maildirector's
// are the same.
var (
	resultValues     = []string{"return-ok", "return", "return-fail", "continue", "continue-ok", "continue-fail"}
	passdbSkipValues = []string{"never", "authenticated", "unauthenticated"}
	userdbSkipValues = []string{"never", "found", "notfound"}
)

// chain translates the passdb or userdb sections in order.
func (t *translator) chain(kind string, sections []*Node) []*ymap {
	var out []*ymap
	for _, sec := range sections {
		t.used[sec] = true
		f := map[string]*Node{}
		for _, c := range sec.Children {
			if !c.Section {
				if old := f[c.Key]; old != nil {
					t.used[old] = true // the last one wins
				}
				f[c.Key] = c
			}
		}
		d := f["driver"]
		if d == nil {
			t.noteNode(sec, NeedsDecision, "a "+kind+" without driver: left out")
			continue
		}
		driver := strings.ToLower(strings.TrimSpace(d.Value))
		switch {
		case driver == "static" || driver == "ldap" || driver == "sql":
		case kind == "userdb" && driver == "prefetch":
			t.noteNode(sec, NotNeeded, "prefetch takes userdb_* fields from the passdb; maildirector's LMTP looks recipients up in the passdb (lmtp.lookup: passdb), as Dovecot's LMTP proxy did")
			continue
		default:
			t.noteNode(sec, NotSupported, fmt.Sprintf("driver %s: maildirector has static, ldap and sql; the chain is written without this %s, so check the result rules around it", driver, kind))
			continue
		}
		m := newMap()
		t.used[d] = true
		m.str("driver", driver, t.from(d))
		args := f["args"]
		if args != nil {
			t.used[args] = true
			m.str("args", args.Value, t.from(args))
		} else if driver != "static" {
			t.note(sec.Pos, sec.Path(), NeedsDecision, driver+" needs args: the path of its .conf.ext file")
		}
		for _, k := range []string{"name", "mechanisms", "username_filter", "default_fields", "override_fields"} {
			if kind == "userdb" && (k == "mechanisms" || k == "username_filter") {
				continue
			}
			if n := f[k]; n != nil {
				t.used[n] = true
				m.str(k, n.Value, t.from(n))
			}
		}
		skips := passdbSkipValues
		if kind == "userdb" {
			skips = userdbSkipValues
		}
		t.enum(m, f["skip"], "skip", skips)
		for _, k := range []string{"result_success", "result_failure", "result_internalfail"} {
			t.enum(m, f[k], k, resultValues)
		}
		if kind == "passdb" {
			for _, k := range []string{"master", "pass", "deny"} {
				n := f[k]
				if n == nil {
					continue
				}
				b, err := parseBool(n.Value)
				if err != nil {
					t.noteNode(n, NeedsDecision, err.Error())
					continue
				}
				t.used[n] = true
				m.boolean(k, b, t.from(n))
			}
		}
		out = append(out, m)
	}
	return out
}

func (t *translator) enum(m *ymap, n *Node, key string, allowed []string) {
	if n == nil {
		return
	}
	v := strings.ToLower(strings.TrimSpace(n.Value))
	for _, a := range allowed {
		if v == a {
			t.used[n] = true
			m.str(key, v, t.from(n))
			return
		}
	}
	t.noteNode(n, NeedsDecision, fmt.Sprintf("want one of %s", strings.Join(allowed, ", ")))
}
