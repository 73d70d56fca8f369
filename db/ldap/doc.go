// SPDX-License-Identifier: Apache-2.0

// Package ldap is the LDAP passdb and userdb, configured by Dovecot 2.3's
// dovecot-ldap.conf.ext keys (read unchanged), with one connection pool
// per configuration shared by both. It uses github.com/go-ldap/ldap/v3
// (imported as goldap).
//
// It may import auth and config.
package ldap
