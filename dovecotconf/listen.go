// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// loginService is a Dovecot service whose inet_listeners become
// maildirector listeners.
type loginService struct {
	service  string // Dovecot's service name
	protocol string // its word in protocols, and maildirector's listener protocol
	implicit string // maildirector's protocol for an ssl = yes listener ("": protocol with tls: implicit)
	defaults []listenerSpec
}

// loginServices are the services in the order their listeners are
// written, with the inet_listeners Dovecot 2.3 gives them by default.
var loginServices = []loginService{
	{"imap-login", "imap", "imaps", []listenerSpec{{name: "imap", port: 143}, {name: "imaps", port: 993, ssl: true}}},
	{"pop3-login", "pop3", "pop3s", []listenerSpec{{name: "pop3", port: 110}, {name: "pop3s", port: 995, ssl: true}}},
	{"managesieve-login", "sieve", "", []listenerSpec{{name: "sieve", port: 4190}}},
	{"lmtp", "lmtp", "", nil},
}

func (t *translator) isTranslatedService(name string) bool {
	for _, ls := range loginServices {
		if ls.service == name {
			return true
		}
	}
	return false
}

// listenerSpec is one inet_listener as Dovecot would open it.
type listenerSpec struct {
	name    string
	port    int
	ssl     bool
	haproxy bool
	address string

	section                      *Node // nil for a default listener nobody changed
	portAt, addressAt, haproxyAt *Node
	bad                          bool
}

func (t *translator) readProtocols() map[string]bool {
	n := t.get("protocols")
	value := "imap pop3 lmtp"
	if n == nil {
		t.note(Pos{File: t.cfg.Path, Line: 1}, "protocols", NeedsDecision,
			"not set: Dovecot's default \"imap pop3 lmtp\" is assumed (Debian's packages set it in /usr/share/dovecot/protocols.d)")
	} else {
		value = n.Value
	}
	t.globalOnly("protocols", n)
	m := map[string]bool{}
	for _, w := range splitList(value) {
		switch w {
		case "none":
		case "imap", "pop3", "lmtp", "sieve":
			m[w] = true
		case "submission":
			t.note(n.Pos, "protocols", NotSupported, "submission: "+whySubmit)
		default:
			t.note(n.Pos, "protocols", NotSupported, w+": "+whyNoEquiv)
		}
	}
	return m
}

// filePath is the path of a "<file" setting; Dovecot takes any other
// value as the PEM data itself, which maildirector cannot.
func (t *translator) filePath(n *Node) string {
	if n == nil {
		return ""
	}
	if n.File == "" {
		t.noteNode(n, NeedsDecision, "not a \"<file\" value: Dovecot takes the value itself as PEM data; maildirector needs the path of a file")
		return ""
	}
	return n.File
}

func (t *translator) tls() *ymap {
	out := newMap()
	ssl := t.get("ssl")
	t.sslMode = "yes"
	if ssl != nil {
		switch v := strings.ToLower(ssl.Value); v {
		case "yes", "no", "required":
			t.sslMode = v
		default:
			t.noteNode(ssl, NeedsDecision, "want yes, no or required; Dovecot's default yes is assumed")
		}
	}
	cert, key := t.get("ssl_cert"), t.get("ssl_key")
	ca, verify := t.get("ssl_ca"), t.get("ssl_verify_client_cert")
	fromCert, field := t.get("auth_ssl_username_from_cert"), t.get("ssl_cert_username_field")
	if t.sslMode == "no" {
		for _, n := range []*Node{cert, key, ca, verify, fromCert, field} {
			if n != nil {
				t.noteNode(n, NotNeeded, "ssl = no")
			}
		}
		return out
	}
	certPath, keyPath := t.filePath(cert), t.filePath(key)
	if certPath == "" || keyPath == "" {
		at := ssl
		if at == nil {
			at = cert
		}
		if at == nil {
			at = key
		}
		why := "ssl is yes (Dovecot's default) but ssl_cert or ssl_key is missing, so Dovecot would not start: no TLS listener is written; set tls.cert and tls.key, or ssl = no"
		if at != nil {
			t.note(at.Pos, at.Key, NeedsDecision, why)
		} else {
			t.note(Pos{File: t.cfg.Path, Line: 1}, "ssl", NeedsDecision, why)
		}
		return out
	}
	t.haveCert = true
	out.str("cert", certPath, t.from(cert))
	out.str("key", keyPath, t.from(key))

	verifyOn := false
	if verify != nil {
		b, err := parseBool(verify.Value)
		if err != nil {
			t.noteNode(verify, NeedsDecision, err.Error())
		}
		verifyOn = b
	}
	switch {
	case verifyOn && ca != nil:
		if p := t.filePath(ca); p != "" {
			out.str("client_ca_file", p, t.from(ca, verify))
			t.clientCA = true
		}
	case verifyOn:
		t.noteNode(verify, NeedsDecision, "client certificates are to be verified but ssl_ca names no CA")
	case ca != nil:
		t.noteNode(ca, NotNeeded, "ssl_verify_client_cert is not yes: Dovecot does not ask for client certificates")
	}
	if fromCert != nil {
		b, err := parseBool(fromCert.Value)
		switch {
		case err != nil:
			t.noteNode(fromCert, NeedsDecision, err.Error())
		case b && !t.clientCA:
			t.noteNode(fromCert, NeedsDecision, "user names from client certificates need a verified certificate: ssl_ca with ssl_verify_client_cert = yes")
		}
	}
	if field != nil {
		switch field.Value {
		case "commonName", "emailAddress":
			if t.clientCA {
				out.str("cert_username_field", field.Value, t.from(field))
			} else {
				t.noteNode(field, NotNeeded, "no client certificates are verified")
			}
		default:
			t.noteNode(field, NotSupported, "maildirector takes the user from commonName or emailAddress")
		}
	}
	if sni := t.sni(); len(sni) > 0 {
		out.maps("sni", sni)
	}
	return out
}

// sni turns "local_name NAME { ssl_cert, ssl_key }" blocks into tls.sni
// entries; certificates per address cannot be followed.
func (t *translator) sni() []*ymap {
	var out []*ymap
	for _, f := range t.filters {
		if f.Key != "local_name" || f.Parent != t.cfg.Top {
			continue
		}
		var cert, key *Node
		for _, c := range f.Children {
			if t.shadowed(c) || c.Section {
				continue
			}
			switch c.Key {
			case "ssl_cert":
				cert = c
			case "ssl_key":
				key = c
			}
		}
		if cert == nil && key == nil {
			continue
		}
		t.used[f] = true
		if cert == nil || key == nil {
			for _, n := range []*Node{cert, key} {
				if n != nil {
					t.noteNode(n, NeedsDecision, "a certificate for "+f.Name+" needs both ssl_cert and ssl_key")
				}
			}
			continue
		}
		cp, kp := t.filePath(cert), t.filePath(key)
		t.used[cert], t.used[key] = true, true
		if cp == "" || kp == "" {
			continue
		}
		m := newMap()
		m.str("cert", cp, t.from(cert)+" (local_name "+f.Name+": Go picks it by the names in the certificate)")
		m.str("key", kp, t.from(key))
		out = append(out, m)
	}
	for _, key := range []string{"ssl_cert", "ssl_key"} {
		for _, n := range t.filtered(key) {
			if !t.used[n] {
				t.noteNode(n, NotSupported, "a certificate per protocol or address: maildirector picks certificates by the name the client asks for (tls.sni, from local_name blocks)")
			}
		}
	}
	return out
}

func (t *translator) listeners() []*ymap {
	listen := t.get("listen")
	listenValue := "*, ::"
	if listen != nil {
		listenValue = listen.Value
	}
	t.globalOnly("listen", listen)
	var out []*ymap
	for _, ls := range loginServices {
		sections := t.services[ls.service]
		if !t.protocols[ls.protocol] {
			for _, s := range sections {
				t.noteNode(s, NotNeeded, fmt.Sprintf("%s is not in protocols: Dovecot does not start this service", ls.protocol))
			}
			continue
		}
		specs := make([]*listenerSpec, 0, len(ls.defaults))
		for i := range ls.defaults {
			d := ls.defaults[i]
			specs = append(specs, &d)
		}
		for _, s := range sections {
			t.used[s] = true
			for _, c := range s.Children {
				switch {
				case c.Section && c.Key == "inet_listener":
					specs = t.inetListener(specs, c)
				case c.Section && c.Key == "unix_listener" && ls.protocol == "lmtp":
					t.noteNode(c, NeedsDecision, "maildirector can take LMTP on a UNIX socket ({protocol: lmtp, address: /path, mode: \"0660\"}), but Director could not proxy from one (it dialled the backends on port 0), so it is not written")
				case c.Section && (c.Key == "unix_listener" || c.Key == "fifo_listener"):
					t.noteNode(c, NotSupported, "maildirector's login listeners are TCP")
				}
			}
		}
		protoSSL := t.forProtocol(ls.protocol, "ssl")
		for _, sp := range specs {
			out = append(out, t.openListener(ls, sp, listen, listenValue, protoSSL)...)
		}
	}
	t.globalOnly("ssl", t.global["ssl"])
	return out
}

func (t *translator) inetListener(specs []*listenerSpec, sec *Node) []*listenerSpec {
	t.used[sec] = true
	var sp *listenerSpec
	for _, x := range specs {
		if sec.Name != "" && x.name == sec.Name {
			sp = x
		}
	}
	if sp == nil {
		sp = &listenerSpec{name: sec.Name}
		specs = append(specs, sp)
	}
	sp.section = sec
	for _, c := range sec.Children {
		if c.Section || t.shadowed(c) {
			continue
		}
		var err error
		switch c.Key {
		case "port":
			t.used[c] = true
			sp.portAt = c
			var perr error
			sp.port, perr = strconv.Atoi(strings.TrimSpace(c.Value))
			if perr != nil || sp.port < 0 || sp.port > 65535 {
				err = fmt.Errorf("%q is not a port", c.Value)
			}
		case "address":
			t.used[c] = true
			sp.address, sp.addressAt = c.Value, c
		case "ssl":
			t.used[c] = true
			sp.ssl, err = parseBool(c.Value)
		case "haproxy":
			t.used[c] = true
			sp.haproxy, err = parseBool(c.Value)
			sp.haproxyAt = c
		}
		if err != nil {
			sp.bad = true
			t.noteNode(c, NeedsDecision, err.Error()+": the listener is not written")
		}
	}
	return specs
}

func (t *translator) openListener(ls loginService, sp *listenerSpec, listen *Node, listenValue string, protoSSL *Node) []*ymap {
	if sp.bad || sp.port == 0 {
		return nil // port 0 is how Dovecot turns a listener off
	}
	if sp.ssl && !t.haveCert {
		if sp.section != nil {
			t.note(sp.section.Pos, sp.section.Path(), NotNeeded, "an SSL listener without TLS configured (ssl = no, or no certificate): not written")
		}
		return nil
	}
	protoOff := protoSSL != nil && protoSSL.Parent != t.cfg.Top && strings.EqualFold(protoSSL.Value, "no")
	if sp.ssl && protoOff {
		at := protoSSL
		if sp.section != nil {
			at = sp.section
		}
		t.note(at.Pos, at.Path(), NotNeeded, fmt.Sprintf("the %s listener %s takes TLS only, and ssl = no for %s (%s): Dovecot's login process could not serve it either; not written",
			ls.protocol, sp.name, ls.protocol, t.show(protoSSL.Pos)))
		return nil
	}
	addrValue, addrAt := listenValue, listen
	if sp.addressAt != nil && strings.TrimSpace(sp.address) != "" {
		addrValue, addrAt = sp.address, sp.addressAt
	}
	hosts, addrNote := t.addresses(addrValue, addrAt)
	where := fmt.Sprintf("Dovecot's default %s listener", sp.name)
	if sp.section != nil {
		where = fmt.Sprintf("%s (%s)", t.from(sp.section), sp.section.Path())
	}
	var out []*ymap
	for _, h := range hosts {
		m := newMap()
		proto, implicitTLS := ls.protocol, false
		if sp.ssl {
			if ls.implicit != "" {
				proto = ls.implicit
			} else {
				implicitTLS = true
			}
		}
		m.str("protocol", proto, where)
		addrComment := addrNote
		if addrAt == nil {
			addrComment = strings.TrimSpace("Dovecot's default listen = *, :: " + addrNote)
		} else if addrNote == "" {
			addrComment = t.from(addrAt)
		} else {
			addrComment = t.from(addrAt) + " " + addrNote
		}
		m.str("address", net.JoinHostPort(h, strconv.Itoa(sp.port)), addrComment)
		switch {
		case implicitTLS:
			m.str("tls", "implicit", "ssl = yes")
		case t.haveCert && protoOff:
			m.str("tls", "none", t.from(protoSSL))
		}
		if sp.haproxy {
			m.boolean("haproxy", true, t.from(sp.haproxyAt))
		}
		if ls.protocol == "lmtp" {
			if ip, err := netip.ParseAddr(h); err == nil && !ip.IsLoopback() {
				// Dovecot has no such list: whoever reached the
				// port could deliver.
				m.list("allow_networks", []string{"0.0.0.0/0", "::/0"}, []string{"Dovecot took LMTP from any address"})
				at := sp.section
				t.note(at.Pos, at.Path(), NeedsDecision, "Dovecot took LMTP from any address that reached it; maildirector takes it from loopback only unless allow_networks says otherwise, "+
					"so allow_networks: [0.0.0.0/0, ::/0] is written: narrow it to your MTAs")
			}
		}
		out = append(out, m)
		if ls.protocol == "lmtp" {
			t.lmtpPorts = append(t.lmtpPorts, sp.port)
			t.lmtpPortAt = append(t.lmtpPortAt, sp.portAt)
		}
	}
	return out
}

// addresses turns a Dovecot address list into the hosts to listen on.
// "*" and "::" together become one "::": Go listens there on IPv6 and
// IPv4 at once, and a second listener on 0.0.0.0 and the same port would
// fail with "address already in use".
func (t *translator) addresses(value string, at *Node) ([]string, string) {
	var any4, any6 bool
	var hosts []string
	for _, w := range splitList(value) {
		switch w {
		case "*":
			any4 = true
		case "::", "[::]":
			any6 = true
		default:
			a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(w, "["), "]"))
			if err != nil {
				key := "listen"
				pos := Pos{File: t.cfg.Path, Line: 1}
				if at != nil {
					key, pos = at.Path(), at.Pos
				}
				t.note(pos, key, NeedsDecision, fmt.Sprintf("%s is not an IP address: Dovecot listened on the first address the name resolved to; maildirector needs the address", w))
				continue
			}
			hosts = append(hosts, a.String())
		}
	}
	switch {
	case any4 && any6:
		return append([]string{"::"}, hosts...), "(\"*, ::\" is one [::] listener: Go takes IPv4 there too)"
	case any4:
		return append([]string{"0.0.0.0"}, hosts...), ""
	case any6:
		return append([]string{"::"}, hosts...), ""
	}
	return hosts, ""
}
