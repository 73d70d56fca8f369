// SPDX-License-Identifier: Apache-2.0

// Package sql is the SQL passdb and userdb (MySQL / MariaDB through
// github.com/go-sql-driver/mysql), configured by Dovecot 2.3's
// dovecot-sql.conf.ext keys. Every %variable becomes a bind parameter,
// never text in the query.
//
// It may import auth and config.
package sql
