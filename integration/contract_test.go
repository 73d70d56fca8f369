// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"testing"

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
