// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/integration/harness"
	"github.com/maildirector/maildirector/internal/authbuild"
)

// seedUser is user NNNN of ldif/ and sql/; seedPassword its password.
func seedUser(n int) string     { return fmt.Sprintf("user%04d@example.com", n) }
func seedPassword(n int) string { return fmt.Sprintf("pw-user%04d", n) }

// seedPinned reports whether the seed pins user n to 127.0.0.12.
func seedPinned(n int) bool { return n%10 == 7 }

// seedUsers maps every seed user to its password (for backends).
func seedUsers() map[string]string {
	m := map[string]string{}
	for n := 0; n < 1000; n++ {
		m[seedUser(n)] = seedPassword(n)
	}
	return m
}

// startSlapd runs a private slapd with the seed directory.
func startSlapd(t testing.TB) *harness.Slapd {
	t.Helper()
	requireTools(t, "slapd", "slapadd", "ldapsearch")
	s, err := harness.StartSlapd(harness.SlapdOptions{Dir: filepath.Join(testDir(t), "slapd"), LDIF: []string{seedFile(t, "ldif/seed.ldif")}, LogLevel: "0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// startMariaDB runs a private mariadbd with the seed tables.
func startMariaDB(t testing.TB) *harness.MariaDB {
	t.Helper()
	requireTools(t, "mariadbd", "mariadb-install-db", "mariadb")
	m, err := harness.StartMariaDB(harness.MariaDBOptions{Dir: filepath.Join(testDir(t), "mariadb"),
		SQL: []string{seedFile(t, "sql/schema.sql"), seedFile(t, "sql/seed.sql")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// ldapConfExt writes a dovecot-ldap.conf.ext as a Dovecot 2.3 site would
// have it: the bind account reads userPassword; every user is proxied,
// mailHost pins the backend. extra lines are appended.
func ldapConfExt(t testing.TB, s *harness.Slapd, name, extra string) string {
	t.Helper()
	p := filepath.Join(testDir(t), name)
	body := fmt.Sprintf(`# dovecot-ldap.conf.ext, read unchanged by Dovecot 2.3 and maildirector
uris = %s
dn = %s
dnpass = %s
ldap_version = 3
base = ou=people,dc=example,dc=com
scope = subtree
deref = never
pass_filter = (&(objectClass=inetOrgPerson)(mail=%%u))
pass_attrs = mail=user, userPassword=password, =proxy=y, mailHost=host
user_filter = (&(objectClass=inetOrgPerson)(mail=%%u))
user_attrs = mail=user, =home=/srv/mail/%%d/%%n
default_pass_scheme = CRYPT
%s`, s.URI(), harness.LDAPServiceDN, harness.LDAPServicePassword, extra)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sqlConfExt writes a dovecot-sql.conf.ext for the seed tables.
func sqlConfExt(t testing.TB, m *harness.MariaDB, name, extra string) string {
	t.Helper()
	p := filepath.Join(testDir(t), name)
	body := fmt.Sprintf(`# dovecot-sql.conf.ext, read unchanged by Dovecot 2.3 and maildirector
driver = mysql
connect = host=127.0.0.1 port=%d dbname=%s user=%s password=%s connect_timeout=2 read_timeout=2 write_timeout=2
default_pass_scheme = MD5
password_query = SELECT userid AS user, password, 'y' AS proxy, mailhost AS host FROM users WHERE userid = '%%u'
user_query = SELECT userid AS user, CONCAT('/srv/mail/', domain, '/', username) AS home FROM users WHERE userid = '%%u'
%s`, m.Opts.Port, m.DB, m.User, m.Password, extra)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// buildChain builds the passdb chain from a YAML auth configuration the
// way the binary does.
func buildChain(t testing.TB, yamlConf string) *authbuild.DBs {
	t.Helper()
	cfg, err := config.Parse([]byte("listen: [{protocol: imap, address: \"127.0.0.1:1\"}]\ndirector: {backends: [127.0.0.11]}\n" + yamlConf))
	if err != nil {
		t.Fatal(err)
	}
	dbs, err := authbuild.Build(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dbs.Close)
	return dbs
}

func verifyPlain(t testing.TB, dbs *authbuild.DBs, authzid, user, pass string) (auth.Result, error) {
	t.Helper()
	return dbs.Passdb.Verify(context.Background(), &auth.Request{Service: "imap", AuthzID: authzid, User: user, Password: pass})
}
