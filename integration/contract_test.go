// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/integration/harness"
	"github.com/maildirector/maildirector/passdb/passdbtest"
)

// The passdb contract (passdb/passdbtest) against real servers: verdicts,
// empty passwords, injection attempts, an outage and recovery, concurrency.

func TestLDAPContract(t *testing.T) {
	s := startSlapd(t)
	file := ldapConfExt(t, s, "dovecot-ldap.conf.ext", "")
	dbs := buildChain(t, fmt.Sprintf("passdb: [{driver: ldap, args: %q}]\n", file))
	passdbtest.Run(t, dbs.Passdb.Entries[0].DB, passdbtest.Fixture{
		User: seedUser(1), Password: seedPassword(1), Unknown: "nobody@example.com",
		Down: func(t *testing.T) { s.Stop() },
		Up: func(t *testing.T) {
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// With auth_bind the directory checks the password by a bind as the user
// (user0001's {SSHA} is one slapd can check itself).
func TestLDAPAuthBindContract(t *testing.T) {
	s := startSlapd(t)
	file := ldapConfExt(t, s, "dovecot-ldap-bind.conf.ext", "auth_bind = yes\n")
	dbs := buildChain(t, fmt.Sprintf("passdb: [{driver: ldap, args: %q}]\n", file))
	passdbtest.Run(t, dbs.Passdb.Entries[0].DB, passdbtest.Fixture{
		User: seedUser(1), Password: seedPassword(1), Unknown: "nobody@example.com",
		Down: func(t *testing.T) { s.Stop() },
		Up: func(t *testing.T) {
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestSQLContract(t *testing.T) {
	m := startMariaDB(t)
	file := sqlConfExt(t, m, "dovecot-sql.conf.ext", "")
	dbs := buildChain(t, fmt.Sprintf("passdb: [{driver: sql, args: %q}]\n", file))
	passdbtest.Run(t, dbs.Passdb.Entries[0].DB, passdbtest.Fixture{
		User: seedUser(1), Password: seedPassword(1), Unknown: "nobody@example.com",
		Down: func(t *testing.T) { m.Stop() },
		Up: func(t *testing.T) {
			if err := m.Start(); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// Several servers: the first is down (nothing listens), the second
// answers; lookups fail over, for LDAP uris and SQL host= alike.
func TestFailover(t *testing.T) {
	dead, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ldap", func(t *testing.T) {
		s := startSlapd(t)
		file := ldapConfExt(t, s, "failover-ldap.conf.ext", fmt.Sprintf("uris = ldap://127.0.0.1:%d %s\n", dead, s.URI()))
		dbs := buildChain(t, fmt.Sprintf("passdb: [{driver: ldap, args: %q}]\n", file))
		if res, err := verifyPlain(t, dbs, "", seedUser(1), seedPassword(1)); err != nil || res.Status != auth.StatusOK {
			t.Fatalf("%v %v", res.Status, err)
		}
	})
	t.Run("sql", func(t *testing.T) {
		m := startMariaDB(t)
		file := sqlConfExt(t, m, "failover-sql.conf.ext", "")
		data, _ := os.ReadFile(file)
		// 127.0.0.2 on the same port: nothing listens there.
		os.WriteFile(file, []byte(strings.Replace(string(data), "connect = host=127.0.0.1", "connect = host=127.0.0.2 host=127.0.0.1", 1)), 0o644)
		dbs := buildChain(t, fmt.Sprintf("passdb: [{driver: sql, args: %q}]\n", file))
		if res, err := verifyPlain(t, dbs, "", seedUser(1), seedPassword(1)); err != nil || res.Status != auth.StatusOK {
			t.Fatalf("%v %v", res.Status, err)
		}
	})
}
