// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"context"
	"encoding/base64"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// seedFile returns the absolute path of a committed seed file (ldif/…,
// sql/…); go test runs in the package directory.
func seedFile(t testing.TB, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ldapTool runs one of OpenLDAP's command-line tools and returns its
// output; a non-zero exit fails the test.
func ldapTool(t testing.TB, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Env = harness.LDAPClientEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ldifValue returns attr's first value in ldapsearch -LLL output,
// decoding base64 ("attr:: ..."), which slapd uses for userPassword.
func ldifValue(t testing.TB, ldif, attr string) string {
	t.Helper()
	for _, line := range strings.Split(strings.ReplaceAll(ldif, "\n ", ""), "\n") {
		if v, ok := strings.CutPrefix(line, attr+":: "); ok {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return string(b)
		}
		if v, ok := strings.CutPrefix(line, attr+": "); ok {
			return v
		}
	}
	return ""
}

// TestSlapdHarness checks the private slapd and the seed directory: the
// bind account reads hashes, users bind with their passwords, a frozen
// server answers nothing until thawed, and a stopped one comes back on the
// same port.
func TestSlapdHarness(t *testing.T) {
	requireTools(t, "slapd", "slapadd", "ldapsearch", "ldapwhoami")
	t0 := time.Now()
	s, err := harness.StartSlapd(harness.SlapdOptions{
		Dir:  testDir(t),
		LDIF: []string{seedFile(t, "ldif/seed.ldif")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	t.Logf("slapd with 1,000 users up in %v on %s", time.Since(t0).Round(time.Millisecond), s.URI())

	search := func(filter string, attrs ...string) string {
		args := append([]string{"-x", "-LLL", "-H", s.URI(), "-D", harness.LDAPServiceDN, "-w", harness.LDAPServicePassword,
			"-b", "ou=people," + harness.LDAPSuffix, filter}, attrs...)
		return ldapTool(t, "ldapsearch", args...)
	}
	got := search("(mail=user0007@example.com)", "mailHost", "userPassword")
	if v := ldifValue(t, got, "mailHost"); v != "127.0.0.12" {
		t.Errorf("user0007 mailHost = %q\n%s", v, got)
	}
	// The tens digit picks the scheme (ldif/README.md).
	for uid, prefix := range map[string]string{
		"user0007": "{SSHA}",
		"user0045": "{CRYPT}$6$",
		"user0070": "{SHA512-CRYPT}$6$",
		"user0081": "{PLAIN-MD5}",
		"user0999": "{BLF-CRYPT}$2y$05$",
	} {
		if v := ldifValue(t, search("(uid="+uid+")", "userPassword"), "userPassword"); !strings.HasPrefix(v, prefix) {
			t.Errorf("%s userPassword = %q, want prefix %s", uid, v, prefix)
		}
	}
	if got := search("(mailHost=*)", "1.1"); strings.Count(got, "dn: ") != 100 {
		t.Errorf("want 100 pinned users, got %d", strings.Count(got, "dn: "))
	}

	// Anonymous readers never see a hash (slapd answers without the
	// attribute rather than with an error).
	anon := ldapTool(t, "ldapsearch", "-x", "-LLL", "-H", s.URI(), "-b", harness.LDAPSuffix, "(uid=user0001)", "userPassword", "mail")
	if strings.Contains(anon, "userPassword") || !strings.Contains(anon, "mail: user0001@example.com") {
		t.Errorf("anonymous search: %s", anon)
	}

	// slapd checks {SSHA} and {CRYPT} itself; Dovecot's own schemes (and
	// no password at all) cannot bind.
	bind := func(uid, pw string) (string, error) {
		cmd := exec.Command("ldapwhoami", "-x", "-H", s.URI(), "-D", "uid="+uid+",ou=people,"+harness.LDAPSuffix, "-w", pw)
		cmd.Env = harness.LDAPClientEnv()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, c := range []struct {
		uid, pw string
		ok      bool
	}{
		{"user0001", "pw-user0001", true},
		{"user0045", "pw-user0045", true},
		{"user0001", "wrong", false},
		{"user0070", "pw-user0070", false},
		{"user0099", "pw-user0099", false},
		{"nopass", "x", false},
	} {
		out, err := bind(c.uid, c.pw)
		if c.ok && (err != nil || !strings.Contains(out, "dn:uid="+c.uid+",ou=people,dc=example,dc=com")) {
			t.Errorf("bind as %s: %v %s", c.uid, err, out)
		}
		if !c.ok && (err == nil || !strings.Contains(out, "Invalid credentials (49)")) {
			t.Errorf("bind as %s with %s: want Invalid credentials, got %v %s", c.uid, c.pw, err, out)
		}
	}

	s.Freeze()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	frozen := exec.CommandContext(ctx, "ldapwhoami", "-x", "-H", s.URI())
	frozen.Env = harness.LDAPClientEnv()
	if out, err := frozen.CombinedOutput(); err == nil {
		t.Errorf("frozen slapd answered: %s", out)
	}
	cancel()
	s.Thaw()
	if out, err := bind("user0001", "pw-user0001"); err != nil {
		t.Errorf("after Thaw: %v %s", err, out)
	}

	s.Stop()
	if err := exec.Command("ldapwhoami", "-x", "-H", s.URI()).Run(); err == nil {
		t.Fatal("slapd answers after Stop")
	}
	t0 = time.Now()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v", time.Since(t0).Round(time.Millisecond))
	if out, err := bind("user0001", "pw-user0001"); err != nil {
		t.Errorf("after restart: %v %s", err, out)
	}
}

// TestMariaDBHarness checks the private MariaDB and the seed database: the
// application account sees 1,000 users over TCP, a frozen server answers
// nothing until thawed, and a stopped one comes back with its data.
func TestMariaDBHarness(t *testing.T) {
	requireTools(t, "mariadbd", "mariadb-install-db", "mariadb")
	t0 := time.Now()
	m, err := harness.StartMariaDB(harness.MariaDBOptions{
		Dir: testDir(t),
		SQL: []string{seedFile(t, "sql/schema.sql"), seedFile(t, "sql/seed.sql")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	t.Logf("mariadbd with 1,000 users up in %v on %s", time.Since(t0).Round(time.Millisecond), m.Addr())

	// query asks over TCP as the application account, as the sql passdb
	// will; timeout bounds the wait on a frozen server.
	host, port, _ := net.SplitHostPort(m.Addr())
	query := func(sql string, timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--protocol=tcp", "-h", host, "-P", port,
			"-u", m.User, "-p"+m.Password, "--batch", "--skip-column-names", m.DB, "-e", sql).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	count := "SELECT COUNT(*), COUNT(mailhost) FROM users WHERE userid LIKE 'user____@example.com'"
	if got, err := query(count, 10*time.Second); err != nil || got != "1000\t100" {
		t.Fatalf("%s: %q, %v", count, got, err)
	}
	// The same hash as the LDIF's: one generator writes both.
	if got, err := m.Exec("SELECT password, mailhost FROM users WHERE userid = 'USER0007@example.com'"); err != nil || !strings.HasPrefix(got, "{SSHA}") || !strings.HasSuffix(got, "\t127.0.0.12\n") {
		t.Errorf("user0007: %q, %v", got, err)
	}

	m.Freeze()
	if got, err := query("SELECT 1", time.Second); err == nil {
		t.Errorf("frozen server answered %q", got)
	}
	m.Thaw()
	if got, err := query("SELECT 1", 10*time.Second); err != nil || got != "1" {
		t.Fatalf("after Thaw: %q, %v", got, err)
	}

	m.Stop()
	if _, err := query("SELECT 1", 5*time.Second); err == nil {
		t.Fatal("server answers after Stop")
	}
	t0 = time.Now()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted in %v", time.Since(t0).Round(time.Millisecond))
	if got, err := query("SELECT COUNT(*) FROM users", 10*time.Second); err != nil || got != "1001" {
		t.Errorf("after restart: %q, %v", got, err)
	}
}
