// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"path/filepath"
	"strings"
	"testing"
)

// translateText translates one dovecot.conf given as text.
func translateText(t *testing.T, conf string, opt TranslateOptions) (yamlText, notes string) {
	t.Helper()
	dir := writeTree(t, map[string]string{"dovecot.conf": conf})
	res, err := Import(filepath.Join(dir, "dovecot.conf"), Options{}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return string(res.YAML), string(notesText(res.Notes))
}

// base is the least a translation needs to load, for the cases below to
// add to.
const base = "protocols = imap\nssl = no\ndirector_mail_servers = 10.0.0.10\npassdb {\n  driver = static\n  args = nopassword=y\n}\n"

// TestTranslateDetails checks single mappings and notes that the golden
// cases leave out: each row's YAML must contain every "yaml" string and
// its notes every "note" string.
func TestTranslateDetails(t *testing.T) {
	for _, tc := range []struct {
		name       string
		conf       string
		yaml, note []string
		notYAML    []string
	}{
		{name: "ipv6 only", conf: base + "listen = ::\n", yaml: []string{"address: '[::]:143'"}},
		{name: "listen default", conf: base, yaml: []string{"address: '[::]:143' # Dovecot's default listen = *, ::"}},
		{name: "listen names", conf: base + "listen = mail.example.com, 192.0.2.1\n",
			yaml: []string{"address: 192.0.2.1:143"}, note: []string{"dovecot.conf:8: listen: needs a decision: mail.example.com is not an IP address"}},
		{name: "no listener", conf: base + "listen =\n", note: []string{"listen: needs a decision: no IMAP, POP3, ManageSieve or LMTP listener"}},
		{name: "protocols unset", conf: strings.Replace(base, "protocols = imap\n", "", 1),
			yaml: []string{"protocol: pop3", "protocol: imap"}, note: []string{`protocols: needs a decision: not set: Dovecot's default "imap pop3 lmtp" is assumed`}},
		{name: "protocols submission", conf: strings.Replace(base, "protocols = imap", "protocols = imap submission", 1),
			note: []string{"protocols: not supported: submission: maildirector has no submission proxy"}},
		{name: "service of a protocol not served", conf: base + "service pop3-login {\n  inet_listener pop3 {\n    port = 1110\n  }\n}\n",
			notYAML: []string{"1110"}, note: []string{"service pop3-login: not needed: pop3 is not in protocols"}},
		{name: "ssl without certificate", conf: strings.Replace(base, "ssl = no", "ssl = yes", 1),
			notYAML: []string{"imaps", "tls:"}, note: []string{"ssl: needs a decision: ssl is yes (Dovecot's default) but ssl_cert or ssl_key is missing"}},
		{name: "ssl_cert without <", conf: strings.Replace(base, "ssl = no", "ssl = yes\nssl_cert = /etc/ssl/cert.pem\nssl_key = </etc/ssl/key.pem", 1),
			note: []string{`ssl_cert: needs a decision: not a "<file" value`}},
		{name: "bad ssl", conf: strings.Replace(base, "ssl = no", "ssl = maybe", 1), note: []string{"ssl: needs a decision: want yes, no or required"}},
		{name: "bad port", conf: base + "service imap-login {\n  inet_listener imap {\n    port = http\n  }\n}\n",
			notYAML: []string{"protocol: imap"}, note: []string{`service imap-login { inet_listener imap { port } }: needs a decision: "http" is not a port: the listener is not written`}},
		{name: "new listener without port", conf: base + "service imap-login {\n  inet_listener extra {\n    address = 10.0.0.1\n  }\n}\n",
			notYAML: []string{"10.0.0.1:"}},
		{name: "reuse_port", conf: base + "service imap-login {\n  inet_listener imap {\n    reuse_port = yes\n  }\n}\n",
			note: []string{"service imap-login { inet_listener imap { reuse_port } }: not needed: Dovecot's process tuning"}},
		{name: "login unix listener", conf: base + "service imap-login {\n  unix_listener imap-local {\n  }\n}\n",
			note: []string{"service imap-login { unix_listener imap-local }: not supported: maildirector's login listeners are TCP"}},
		{name: "expire minimum", conf: base + "director_user_expire = 5s\n",
			yaml: []string{"user_expire: 10s"}, note: []string{"below the minimum of 10s"}},
		{name: "bad expire", conf: base + "director_user_expire = 5\n", notYAML: []string{"user_expire"},
			note: []string{`director_user_expire: needs a decision: time interval "5" is missing units`}},
		{name: "empty hash", conf: base + "director_username_hash =\n", notYAML: []string{"username_hash"},
			note: []string{"director_username_hash: needs a decision: empty"}},
		{name: "bad range", conf: strings.Replace(base, "10.0.0.10", "10.0.0.10 10.0.0.200-10.0.1.3 10.0.0.9-10.0.0.1 10.0.0.1-::1", 1),
			yaml: []string{"- 10.0.0.10 #"}, note: []string{"IP address range too large", "IP addresses reversed", "IP address family mismatch"}},
		{name: "vhost count in mail servers", conf: strings.Replace(base, "10.0.0.10", "10.0.0.10 50", 1),
			note: []string{"50: not an address (Dovecot would look it up as a host name); vhost counts are not set in dovecot.conf"}},
		{name: "no backends", conf: strings.Replace(base, "director_mail_servers = 10.0.0.10\n", "", 1),
			note: []string{"director_mail_servers: needs a decision: no backend address was found",
				"dovecot.conf:1: needs a decision: the result does not load yet: director.backends: at least one backend is needed"}},
		{name: "ipv6 range", conf: strings.Replace(base, "10.0.0.10", "2001:db8::a-2001:db8::c@v6", 1), yaml: []string{"- 2001:db8::a-2001:db8::c@v6"}},
		{name: "reconnect cap", conf: base + "login_proxy_max_reconnects = 50\n", yaml: []string{"connect_attempts: 10"},
			note: []string{"at most 10 connection attempts"}},
		{name: "max userip zero wins", conf: base + "protocols = imap pop3\nprotocol imap {\n  mail_max_userip_connections = 0\n}\nmail_max_userip_connections = 20\n",
			yaml: []string{"max_userip_connections: 0"}, note: []string{"dovecot.conf:12: mail_max_userip_connections: needs a decision: maildirector has one limit for every protocol: the most permissive, 0"}},
		{name: "passdb without driver", conf: base + "passdb {\n  args = x\n}\n", note: []string{"passdb: needs a decision: a passdb without driver: left out"}},
		{name: "ldap without args", conf: base + "passdb {\n  driver = ldap\n}\n", note: []string{"ldap needs args"}},
		{name: "bad enum", conf: base + "passdb {\n  driver = static\n  args = nopassword=y\n  skip = found\n  result_success = stop\n  pass = maybe\n}\n",
			notYAML: []string{"skip:", "result_success:", "pass:"},
			note:    []string{"passdb { skip }: needs a decision: want one of never, authenticated, unauthenticated", "passdb { result_success }: needs a decision: want one of", `passdb { pass }: needs a decision: "maybe" is not a boolean`}},
		{name: "passdb shadowed field", conf: strings.Replace(base, "args = nopassword=y", "args = password=x\n  args = nopassword=y", 1),
			yaml: []string{"args: nopassword=y"}, notYAML: []string{"password=x"}},
		{name: "passdb in a protocol", conf: base + "protocol imap {\n  passdb {\n    driver = static\n  }\n}\n",
			note: []string{"protocol imap { passdb }: not supported"}},
		{name: "no passdb", conf: strings.Replace(base, "passdb {\n  driver = static\n  args = nopassword=y\n}\n", "", 1),
			note: []string{"passdb: needs a decision: no passdb could be translated"}},
		{name: "default mechanisms", conf: base, yaml: []string{"mechanisms: plain # Dovecot's default"}},
		{name: "no mechanism left", conf: base + "auth_mechanisms = gssapi\n", notYAML: []string{"mechanisms:"},
			note: []string{"gssapi: maildirector does not offer it", "no mechanism is left"}},
		{name: "plus without tls", conf: base + "auth_mechanisms = plain scram-sha-256-plus\n", yaml: []string{"mechanisms: plain #"},
			note: []string{"scram-sha-256-plus needs TLS"}},
		{name: "bad trusted", conf: base + "login_trusted_networks = 10.0.0.0/33 ::1\n", yaml: []string{"- ::1"},
			note: []string{"10.0.0.0/33 is neither an address nor a CIDR prefix"}},
		{name: "filter differs", conf: base + "auth_failure_delay = 2 s\nprotocol imap {\n  auth_failure_delay = 5 s\n}\nlocal 10.0.0.1 {\n  auth_failure_delay = 2 s\n}\n",
			yaml: []string{"auth_failure_delay: 2s"}, note: []string{"protocol imap { auth_failure_delay }: needs a decision: maildirector has one value for every protocol and address: the global one (dovecot.conf:8) applies here too"},
			notYAML: []string{"local 10.0.0.1 { auth_failure_delay }"}},
		{name: "realms", conf: base + "auth_realms = example.com\n", yaml: []string{"realm: example.com"}},
		{name: "bad realm", conf: base + "auth_default_realm = @example.com\n", notYAML: []string{"default_realm"}, note: []string{"a realm is a domain"}},
		{name: "lmtp without proxy", conf: strings.Replace(base, "protocols = imap", "protocols = lmtp", 1) + "service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n    port = 24\n  }\n}\n",
			yaml: []string{"address: 127.0.0.1:24"}, notYAML: []string{"allow_networks", "ports:"}, note: []string{"lmtp_proxy: needs a decision: not set, so Dovecot delivered"}},
		{name: "lmtp ports differ", conf: strings.Replace(base, "protocols = imap", "protocols = lmtp", 1) + "lmtp_proxy = no\nservice lmtp {\n  inet_listener a {\n    address = 127.0.0.1\n    port = 24\n  }\n  inet_listener b {\n    address = 127.0.0.1\n    port = 2424\n  }\n}\n",
			notYAML: []string{"ports:"}, note: []string{"LMTP listeners on ports 24, 2424", "lmtp_proxy: needs a decision: Dovecot delivered LMTP mail on this host itself"}},
		{name: "client ca dir", conf: base + "ssl_client_ca_dir = /srv/cas\n", note: []string{"ssl_client_ca_dir: not supported: a CA directory"}},
		{name: "client cert alone", conf: base + "ssl_client_cert = </etc/c.pem\n", note: []string{"needs both ssl_client_cert and ssl_client_key"}},
		{name: "unknown setting", conf: base + "some_future_setting = 1\n", note: []string{"some_future_setting: not supported: maildirector has no equivalent"}},
		{name: "unknown section", conf: base + "frobnicate x {\n  a = 1\n}\n", note: []string{"frobnicate x: not supported"}},
		{name: "unreadable file", conf: base + "login_trusted_networks = </nonexistent/trusted\n", notYAML: []string{"trusted_networks"},
			note: []string{"login_trusted_networks: needs a decision: /nonexistent/trusted cannot be read here (no such file or directory): the value is taken as empty"}},
		{name: "shadowed global", conf: base + "auth_failure_delay = 1 s\nauth_failure_delay = 4 s\n", yaml: []string{"auth_failure_delay: 4s # from dovecot.conf:9"}, notYAML: []string{"1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y, notes := translateText(t, tc.conf, TranslateOptions{})
			body, _, _ := strings.Cut(y, "# Not translated")
			for _, s := range tc.yaml {
				if !strings.Contains(body, s) {
					t.Errorf("YAML lacks %q:\n%s", s, body)
				}
			}
			for _, s := range tc.notYAML {
				if strings.Contains(body, s) {
					t.Errorf("YAML has %q:\n%s", s, body)
				}
			}
			for _, s := range tc.note {
				if !strings.Contains(notes, s) {
					t.Errorf("notes lack %q:\n%s", s, notes)
				}
			}
			if strings.Contains(notes, "local 10.0.0.1 { auth_failure_delay }") {
				t.Errorf("a value equal to the global one is noted:\n%s", notes)
			}
		})
	}
}

func TestDumpErrors(t *testing.T) {
	dir := writeTree(t, map[string]string{"dovecot.conf": base})
	cfg, err := Read(filepath.Join(dir, "dovecot.conf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, dump := range []string{
		"doveadm director add 10.0.0.10\n",
		"doveadm director add 10.0.0.10 1001\n",
		"doveadm director add mail.example.com 100\n",
		"doveadm director update 10.0.0.10 100\n",
		"doveadm director remove\n",
		"some other text\n",
	} {
		if _, err := Translate(cfg, TranslateOptions{Dump: dump, DumpName: "d.txt"}); err == nil || !strings.HasPrefix(err.Error(), "d.txt:1: not a line of") {
			t.Errorf("%q: %v", dump, err)
		}
	}
	// Comments and blank lines are fine; the first of a repeated host counts.
	res, err := Translate(cfg, TranslateOptions{Dump: "# dump\n\ndoveadm director add 10.0.0.10 7\ndoveadm director add 10.0.0.10 9\n"})
	if err != nil || !strings.Contains(string(res.YAML), "- 10.0.0.10 7 # from dump:3") {
		t.Errorf("%v\n%s", err, res.YAML)
	}
}

func TestNoteString(t *testing.T) {
	n := Note{Pos: Pos{File: "conf.d/10-auth.conf", Line: 12}, Key: "auth_verbose", Kind: NotNeeded, Why: "logging"}
	if got := n.String(); got != "conf.d/10-auth.conf:12: auth_verbose: not needed: logging" {
		t.Errorf("got %q", got)
	}
	n.Key = ""
	if got := n.String(); got != "conf.d/10-auth.conf:12: not needed: logging" {
		t.Errorf("got %q", got)
	}
	for k, want := range map[Kind]string{NotNeeded: "not needed", NotSupported: "not supported", NeedsDecision: "needs a decision", 0: "Kind(0)"} {
		if k.String() != want {
			t.Errorf("%d: %q", k, k.String())
		}
	}
}
