// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// TestLDAPThroughGateway: IMAP logins through the gateway against a real
// slapd, with the passdb chain a Director site would have: a master
// passdb, a deny list, the LDAP passdb with proxy fields. Then slapd goes
// away: temporary failures, never "wrong password"; with the cache on, a
// user who logged in before still does; slapd comes back and everything
// works again without restarting the gateway.
func TestLDAPThroughGateway(t *testing.T) {
	s := startSlapd(t)
	e := startBackendsWith(t, []string{"127.0.0.11", "127.0.0.12"}, seedUsers())
	file := ldapConfExt(t, s, "dovecot-ldap.conf.ext", "")
	masters := ldapMastersConfExt(t, s)
	e.startGateway(t, fmt.Sprintf(`  - {driver: ldap, args: %q, master: true, pass: true}
  - {driver: static, args: nopassword, deny: true, username_filter: "user0003@example.com"}
  - {driver: ldap, args: %q}
`, masters, file), trusted+`auth:
  master_user_separator: "*"
  cache: {size: 1M, ttl: 1s, negative_ttl: 1s}
`)
	login := func(t *testing.T, from, user, pass string) string {
		t.Helper()
		c := dial(t, e.gwAddr, from)
		defer c.close()
		return c.login(user, pass)
	}

	t.Run("right and wrong passwords", func(t *testing.T) {
		for _, n := range []int{1, 45, 71, 88, 99} { // {SSHA}, {CRYPT}$6$, {SHA512-CRYPT}, {PLAIN-MD5}, {BLF-CRYPT}
			if st := login(t, "", seedUser(n), seedPassword(n)); !strings.HasPrefix(st, "OK") {
				t.Errorf("%s: %s", seedUser(n), st)
			}
		}
		if st := login(t, "127.0.4.1", seedUser(2), "wrong"); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Errorf("wrong password: %s", st)
		}
		if st := login(t, "127.0.4.2", "nobody@example.com", "x"); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Errorf("unknown user: %s", st)
		}
	})

	t.Run("mailHost pins the backend", func(t *testing.T) {
		u := seedUser(17) // mailHost 127.0.0.12
		if st := login(t, "", u, seedPassword(17)); !strings.HasPrefix(st, "OK") {
			t.Fatal(st)
		}
		if loggedIn(e.backendByIP("127.0.0.12"), u) != 1 {
			t.Fatalf("%s not on its mailHost", u)
		}
	})

	t.Run("master user logs in as another user", func(t *testing.T) {
		u := seedUser(21)
		if st := login(t, "", u+"*proxymaster", "masterpw"); !strings.HasPrefix(st, "OK") {
			t.Fatal(st)
		}
		b := e.backendByIP(e.ringBackend(u))
		if !logHas(b, "Login: user=<"+u+">", "master") {
			t.Fatalf("backend did not log a master login for %s:\n%s", u, lastLines(b.Log(), 5))
		}
		if st := login(t, "127.0.4.3", u+"*proxymaster", "wrong"); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("wrong master password: %s", st)
		}
	})

	t.Run("deny passdb refuses", func(t *testing.T) {
		if st := login(t, "127.0.4.4", seedUser(3), seedPassword(3)); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Fatalf("denied user: %s", st)
		}
	})

	t.Run("slapd down", func(t *testing.T) {
		cached := seedUser(1) // logged in above: in the cache
		s.Stop()
		time.Sleep(1100 * time.Millisecond) // let the cache entries expire: stale data must still serve
		for _, tc := range []struct{ user, pass, want string }{
			{cached, seedPassword(1), "OK"},
			{cached, "wrong", "NO [AUTHENTICATIONFAILED]"}, // the cached hash still says no
			{seedUser(500), seedPassword(500), "NO [UNAVAILABLE]"},
			{seedUser(501), "wrong", "NO [UNAVAILABLE]"}, // never "wrong password" while down
		} {
			if st := login(t, "127.0.4.5", tc.user, tc.pass); !strings.HasPrefix(st, tc.want) {
				t.Errorf("%s/%s during the outage: %s, want %s", tc.user, tc.pass, st, tc.want)
			}
		}
		// SIGHUP reloads the configuration, which empties the cache (as
		// Dovecot's reload does): now the cached user meets the outage.
		if err := syscall.Kill(e.gw.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.Contains(e.gw.Log(), "configuration reloaded") })
		if st := login(t, "127.0.4.5", cached, seedPassword(1)); !strings.HasPrefix(st, "NO [UNAVAILABLE]") {
			t.Errorf("after the flush, during the outage: %s", st)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			st := login(t, "", seedUser(500), seedPassword(500))
			if strings.HasPrefix(st, "OK") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no recovery after slapd came back: %s", st)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
	}
}

// ldapMastersConfExt is a dovecot-ldap.conf.ext for ou=masters.
func ldapMastersConfExt(t testing.TB, s *harness.Slapd) string {
	t.Helper()
	return ldapConfExt(t, s, "dovecot-ldap-masters.conf.ext", `base = ou=masters,dc=example,dc=com
pass_filter = (&(objectClass=account)(uid=%u))
pass_attrs = uid=user, userPassword=password
`)
}

// TestSQLThroughGateway: the same with MariaDB, which is frozen (SIGSTOP):
// the login fails temporarily within the configured timeouts
// (connect_timeout/read_timeout = 2 s), a cached user still logs in, and
// after the thaw everything works again.
func TestSQLThroughGateway(t *testing.T) {
	m := startMariaDB(t)
	e := startBackendsWith(t, []string{"127.0.0.11", "127.0.0.12"}, seedUsers())
	file := sqlConfExt(t, m, "dovecot-sql.conf.ext", "")
	e.startGateway(t, fmt.Sprintf("  - {driver: sql, args: %q}\n", file), trusted+`auth:
  cache: {size: 1M, ttl: 1s, negative_ttl: 1s}
`)
	login := func(t *testing.T, from, user, pass string) string {
		t.Helper()
		c := dial(t, e.gwAddr, from)
		defer c.close()
		return c.login(user, pass)
	}
	for _, n := range []int{1, 45, 71, 88, 99} {
		if st := login(t, "", seedUser(n), seedPassword(n)); !strings.HasPrefix(st, "OK") {
			t.Errorf("%s: %s", seedUser(n), st)
		}
	}
	if st := login(t, "127.0.4.6", seedUser(2), "wrong"); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Errorf("wrong password: %s", st)
	}
	u := seedUser(27) // mailhost 127.0.0.12
	if st := login(t, "", u, seedPassword(27)); !strings.HasPrefix(st, "OK") || loggedIn(e.backendByIP("127.0.0.12"), u) != 1 {
		t.Errorf("pinned user: %s", st)
	}

	m.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			m.Thaw()
		}
	}()
	time.Sleep(1100 * time.Millisecond)
	start := time.Now()
	st := login(t, "127.0.4.7", seedUser(600), seedPassword(600))
	t.Logf("login with mariadbd frozen answered in %v (connect/read timeouts 2 s)", time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(st, "NO [UNAVAILABLE]") {
		t.Errorf("frozen database: %s", st)
	}
	if st := login(t, "", seedUser(1), seedPassword(1)); !strings.HasPrefix(st, "OK") {
		t.Errorf("cached user while the database is frozen: %s", st)
	}
	m.Thaw()
	thawed = true
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := login(t, "", seedUser(600), seedPassword(600))
		if strings.HasPrefix(st, "OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the thaw: %s", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
