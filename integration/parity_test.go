// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/integration/harness"
	"github.com/maildirector/maildirector/internal/authbuild"
)

// login is one question asked of both Dovecot and maildirector.
type login struct{ authzid, user, pass string }

// parityLogins: every seed user with its password, every tenth with a
// wrong one, a user without password, an unknown user, an upper-case
// login (auth_username_format %Lu), and master logins ("user*master").
func parityLogins() []login {
	var ls []login
	for n := 0; n < 1000; n++ {
		ls = append(ls, login{"", seedUser(n), seedPassword(n)})
		if n%10 == 3 {
			ls = append(ls, login{"", seedUser(n), seedPassword(n) + "-wrong"})
		}
	}
	return append(ls,
		login{"", "nopass@example.com", "anything"},
		login{"", "nobody@example.com", "pw-nobody"},
		login{"", strings.ToUpper(seedUser(42)), seedPassword(42)},
		login{"", seedUser(5) + "*proxymaster", "masterpw"},
		login{"", seedUser(7) + "*proxymaster", "masterpw"},
		login{"", seedUser(5) + "*proxymaster", "wrong"},
		login{"", "nobody@example.com*proxymaster", "masterpw"},
	)
}

// flags are boolean fields: Dovecot's reply to a login process carries
// them without a value ("proxy"), whatever value the passdb gave
// ("=proxy=y"); both mean the same (auth.Fields.Has).
var flags = map[string]bool{"proxy": true, "proxy_maybe": true, "proxy_always": true, "nologin": true,
	"nodelay": true, "proxy_not_trusted": true, "proxy_noauth": true, "proxy_nopipelining": true}

// verdict renders an answer the same way for both sides: OK with sorted
// fields (flags as "name"), FAIL, or TEMPFAIL.
func verdict(ok, temp bool, fields map[string]string) string {
	switch {
	case temp:
		return "TEMPFAIL"
	case !ok:
		return "FAIL"
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("OK")
	for _, k := range keys {
		if flags[k] {
			if (auth.Fields{k: fields[k]}).Has(k) {
				fmt.Fprintf(&b, " %s", k)
			}
			continue
		}
		fmt.Fprintf(&b, " %s=%s", k, fields[k])
	}
	return b.String()
}

// dovecotVerdict renders Dovecot's reply; its fields are those a login
// process gets. Fields auth adds about the request itself, not from the
// passdb, are left out.
func dovecotVerdict(rep harness.AuthReply) string {
	f := map[string]string{}
	for k, v := range rep.Fields {
		switch k {
		case "original_user", "temp", "reason", "code":
			continue
		}
		f[k] = v
	}
	return verdict(rep.OK, rep.Temp, f)
}

func ourVerdict(t *testing.T, dbs *authbuild.DBs, l login) string {
	t.Helper()
	res, err := verifyPlain(t, dbs, l.authzid, l.user, l.pass)
	if err != nil {
		return "TEMPFAIL"
	}
	if res.Status != auth.StatusOK {
		return verdict(false, false, nil)
	}
	f := map[string]string{"user": res.User}
	for k, v := range res.Fields {
		f[k] = v
	}
	if res.Master != "" {
		f["auth_user"] = res.Master // Dovecot's name for who authenticated
	}
	return verdict(true, false, f)
}

// TestDovecotParity gives a real Dovecot 2.3 and maildirector the very
// same dovecot-ldap.conf.ext and dovecot-sql.conf.ext files and the same
// passdb blocks, asks both about every seed user (and wrong passwords,
// unknown users, master logins), and wants the same verdict and the same
// fields from both.
func TestDovecotParity(t *testing.T) {
	requireTools(t, "dovecot")
	s := startSlapd(t)
	m := startMariaDB(t)
	ldapFile := ldapConfExt(t, s, "parity-ldap.conf.ext", "")
	masterFile := filepath.Join(testDir(t), "parity-masters.conf.ext")
	os.WriteFile(masterFile, []byte(fmt.Sprintf(`uris = %s
dn = %s
dnpass = %s
base = ou=masters,dc=example,dc=com
pass_filter = (&(objectClass=account)(uid=%%u))
pass_attrs = uid=user, userPassword=password
`, s.URI(), harness.LDAPServiceDN, harness.LDAPServicePassword)), 0o644)
	sqlFile := sqlConfExt(t, m, "parity-sql.conf.ext", "")
	sqlMasterFile := sqlConfExt(t, m, "parity-sql-masters.conf.ext", "")
	// The SQL master passdb: same connection, another password_query.
	data, _ := os.ReadFile(sqlMasterFile)
	data = []byte(strings.Replace(string(data), "password_query = SELECT userid AS user, password, 'y' AS proxy, mailhost AS host FROM users WHERE userid = '%u'",
		"password_query = SELECT username AS user, password FROM masters WHERE username = '%u'", 1))
	os.WriteFile(sqlMasterFile, data, 0o644)

	for _, tc := range []struct{ name, driver, file, masters string }{
		{"ldap", "ldap", ldapFile, masterFile},
		{"sql", "sql", sqlFile, sqlMasterFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc, err := harness.StartDovecotAuth(filepath.Join(testDir(t), "dovecot"), fmt.Sprintf(`
auth_master_user_separator = *
passdb {
  driver = %[1]s
  args = %[3]s
  master = yes
  pass = yes
}
passdb {
  driver = %[1]s
  args = %[2]s
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=/tmp/%%u
}
`, tc.driver, tc.file, tc.masters))
			if err != nil {
				t.Fatal(err)
			}
			defer dc.Stop()
			ours := buildChain(t, fmt.Sprintf(`auth: {master_user_separator: "*"}
passdb:
  - {driver: %[1]s, args: %[3]q, master: true, pass: true}
  - {driver: %[1]s, args: %[2]q}
`, tc.driver, tc.file, tc.masters))
			logins := parityLogins()
			var reqs []harness.AuthRequest
			for _, l := range logins {
				reqs = append(reqs, harness.AuthRequest{Service: "imap", AuthzID: l.authzid, User: l.user, Password: l.pass})
			}
			t0 := time.Now()
			reps, err := dc.AuthMany(reqs)
			if err != nil {
				t.Fatal(err)
			}
			dovecotTime := time.Since(t0)
			diffs, oks := 0, 0
			var ourTime time.Duration
			for i, l := range logins {
				want := dovecotVerdict(reps[i])
				t1 := time.Now()
				got := ourVerdict(t, ours, l)
				ourTime += time.Since(t1)
				if want != got {
					diffs++
					if diffs <= 10 {
						t.Errorf("%s (%q): Dovecot %q, maildirector %q", l.user, l.pass, want, got)
					}
				}
				if strings.HasPrefix(want, "OK") {
					oks++
				}
			}
			t.Logf("%d logins compared, %d accepted by Dovecot, %d differences (Dovecot answered in %v, pipelined; maildirector in %v, one at a time)",
				len(parityLogins()), oks, diffs, dovecotTime.Round(time.Millisecond), ourTime.Round(time.Millisecond))
			if oks < 1000 {
				t.Errorf("only %d logins succeeded in Dovecot; the comparison is too weak", oks)
			}
		})
	}
}
