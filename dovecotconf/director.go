// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// backendEntry is one director.backends line and the addresses it names.
type backendEntry struct {
	spec    string
	ips     []string
	tag     string
	comment string
}

func (t *translator) director() (*ymap, error) {
	out := newMap()
	ms := t.get("director_mail_servers")
	t.globalOnly("director_mail_servers", ms)
	var entries []backendEntry
	if ms != nil {
		entries = t.mailServers(ms)
	}
	if t.opt.Dump != "" {
		var err error
		if entries, err = t.fromDump(ms, entries); err != nil {
			return nil, err
		}
	} else if len(entries) > 0 {
		t.note(ms.Pos, ms.Key, NeedsDecision, "vhost counts, and backends added, removed or re-tagged with doveadm director, live in the running ring, not here: "+
			"every backend is written with 100 vhosts. Import with --dump and the output of \"doveadm director dump\" to carry the ring's over, so that nobody moves")
	}
	if len(entries) == 0 {
		at := Pos{File: t.cfg.Path, Line: 1}
		if ms != nil {
			at = ms.Pos
		}
		t.note(at, "director_mail_servers", NeedsDecision, "no backend address was found: list the backends under director.backends")
	} else {
		specs := make([]string, len(entries))
		comments := make([]string, len(entries))
		for i, e := range entries {
			specs[i], comments[i] = e.spec, e.comment
		}
		out.list("backends", specs, comments)
	}

	if n := t.get("director_user_expire"); n != nil {
		if d, ok := t.duration(n); ok {
			comment := t.from(n)
			if d < 10*time.Second {
				d = 10 * time.Second
				t.note(n.Pos, n.Key, NeedsDecision, "below the minimum of 10s, which both Dovecot and maildirector enforce: 10s is written")
			}
			out.str("user_expire", formatDuration(d), comment)
		}
	}
	t.globalOnly("director_user_expire", t.global["director_user_expire"])
	if n := t.get("director_username_hash"); n != nil {
		if n.Value == "" {
			t.noteNode(n, NeedsDecision, "empty: Dovecot hashed every user alike, onto one backend; maildirector's default, %Lu, applies")
		} else {
			out.str("username_hash", n.Value, t.from(n))
		}
	}
	t.globalOnly("director_username_hash", t.global["director_username_hash"])
	return out, nil
}

// mailServers reads director_mail_servers as Dovecot's
// mail_hosts_parse_and_add does: space-separated "IP", "IP@tag",
// "IP1-IP2[@tag]" (the range within the last octet, or the last 16 bits
// of an IPv6 address). Each entry is written as Dovecot spelled it
// (maildirector reads the same syntax) unless it repeats an address: the
// ring is the same with the address once, and maildirector refuses it
// twice.
func (t *translator) mailServers(n *Node) []backendEntry {
	var out []backendEntry
	seen := map[string]bool{}
	for _, tok := range strings.Fields(n.Value) {
		host, tag, _ := strings.Cut(tok, "@")
		ips, err := expandHosts(host)
		if err != nil {
			t.note(n.Pos, n.Key, NeedsDecision, fmt.Sprintf("%s: %v: left out", tok, err))
			continue
		}
		var fresh []string
		for _, ip := range ips {
			if !seen[ip] {
				fresh = append(fresh, ip)
				seen[ip] = true
			}
		}
		switch {
		case len(fresh) == len(ips):
			out = append(out, backendEntry{spec: tok, ips: ips, tag: tag, comment: t.from(n)})
		case len(fresh) == 0:
			t.note(n.Pos, n.Key, NotNeeded, tok+" is listed twice: the ring is the same with it once")
		default:
			t.note(n.Pos, n.Key, NotNeeded, tok+" repeats addresses listed before: the others are written one by one")
			for _, ip := range fresh {
				out = append(out, backendEntry{spec: withTag(ip, tag), ips: []string{ip}, tag: tag, comment: t.from(n)})
			}
		}
	}
	return out
}

func withTag(ip, tag string) string {
	if tag == "" {
		return ip
	}
	return ip + "@" + tag
}

// expandHosts lists the addresses of "IP" or "IP1-IP2".
func expandHosts(s string) ([]string, error) {
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, errA := netip.ParseAddr(first)
		b, errB := netip.ParseAddr(last)
		if errA == nil && errB == nil {
			return expandRange(a, b)
		}
	}
	a, err := netip.ParseAddr(s)
	if err == nil {
		return []string{a.String()}, nil
	}
	if _, nerr := strconv.Atoi(s); nerr == nil {
		return nil, fmt.Errorf("not an address (Dovecot would look it up as a host name); vhost counts are not set in dovecot.conf but with doveadm director: use --dump to carry them over")
	}
	return nil, fmt.Errorf("a host name: Dovecot resolved it when it started, but the ring hashes IP strings and maildirector takes addresses only: list the addresses it resolves to")
}

func expandRange(a, b netip.Addr) ([]string, error) {
	if a.Is4() != b.Is4() {
		return nil, fmt.Errorf("IP address family mismatch")
	}
	if b.Less(a) {
		return nil, fmt.Errorf("IP addresses reversed")
	}
	as, bs := a.AsSlice(), b.AsSlice()
	fixed := len(as) - 1 // Dovecot lets the last 8 bits of IPv4 vary,
	if !a.Is4() {
		fixed = len(as) - 2 // and the last 16 of IPv6
	}
	for i := 0; i < fixed; i++ {
		if as[i] != bs[i] {
			return nil, fmt.Errorf("IP address range too large")
		}
	}
	var out []string
	for x := a; ; x = x.Next() {
		out = append(out, x.String())
		if x == b {
			return out, nil
		}
	}
}

// fromDump makes the ring's backends, as "doveadm director dump" printed
// them ("doveadm director add [-a PATH] HOST[@TAG] VHOSTS",
// "doveadm director remove [-a PATH] HOST"), the ones written.
func (t *translator) fromDump(ms *Node, configured []backendEntry) ([]backendEntry, error) {
	name := t.opt.DumpName
	if name == "" {
		name = "dump"
	}
	inConfig := map[string]bool{}
	configTag := map[string]string{}
	for _, e := range configured {
		for _, ip := range e.ips {
			inConfig[ip] = true
			configTag[ip] = e.tag
		}
	}
	var out []backendEntry
	inDump := map[string]bool{}
	removed := map[string]bool{}
	for i, line := range strings.Split(t.opt.Dump, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		bad := fmt.Errorf("%s:%d: not a line of \"doveadm director dump\": %q", name, i+1, line)
		if len(f) < 4 || f[0] != "doveadm" || f[1] != "director" {
			return nil, bad
		}
		verb, args := f[2], f[3:]
		if len(args) >= 2 && args[0] == "-a" {
			args = args[2:]
		}
		pos := Pos{File: name, Line: i + 1}
		switch {
		case verb == "add" && len(args) == 2:
			host, tag, _ := strings.Cut(args[0], "@")
			ip, err := netip.ParseAddr(host)
			vhosts, verr := strconv.Atoi(args[1])
			if err != nil || verr != nil || vhosts < 0 || vhosts > 1000 {
				return nil, bad
			}
			if inDump[ip.String()] {
				continue
			}
			inDump[ip.String()] = true
			comment := fmt.Sprintf("from %s", t.show(pos))
			switch {
			case !inConfig[ip.String()]:
				comment += " (added at run time, not in director_mail_servers)"
			case configTag[ip.String()] != tag:
				comment += fmt.Sprintf(" (tag changed at run time from %q)", configTag[ip.String()])
			}
			out = append(out, backendEntry{spec: withTag(ip.String(), tag) + " " + strconv.Itoa(vhosts), ips: []string{ip.String()}, tag: tag, comment: comment})
		case verb == "remove" && len(args) == 1:
			ip, err := netip.ParseAddr(args[0])
			if err != nil {
				return nil, bad
			}
			removed[ip.String()] = true
		default:
			return nil, bad
		}
	}
	for _, e := range configured {
		for _, ip := range e.ips {
			switch {
			case inDump[ip]:
			case removed[ip]:
				t.note(ms.Pos, ms.Key, NotNeeded, ip+" was removed from the ring with doveadm director remove: left out")
			default:
				t.note(ms.Pos, ms.Key, NeedsDecision, ip+" is not in the ring the dump shows: left out")
			}
		}
	}
	return out, nil
}
