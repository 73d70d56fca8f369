-- SPDX-License-Identifier: Apache-2.0
-- maildirector's test schema for MariaDB (10.11): the users of
-- ldif/seed.ldif as rows, for the sql passdb. Load it into the maildirector
-- database: mariadb maildirector < schema.sql (it names no database, so
-- that a test may load it anywhere).

-- users holds one row per mail user. The default collation compares
-- case-insensitively, like LDAP's mail attribute (caseIgnoreIA5Match):
-- both drivers find USER0001@Example.COM.
CREATE TABLE users (
  -- userid is the login name, the full address userNNNN@example.com (%u).
  userid   VARCHAR(255) NOT NULL PRIMARY KEY,
  -- username and domain are its two halves (%n and %d).
  username VARCHAR(255) NOT NULL,
  domain   VARCHAR(255) NOT NULL,
  -- password is a Dovecot {SCHEME}hash, the very string in the LDIF's
  -- userPassword; NULL means the user has no password.
  password VARCHAR(255) NULL,
  -- mailhost pins the user's backend (passdb field host); NULL lets the
  -- director choose.
  mailhost VARCHAR(255) NULL,
  -- nologin set refuses the login (passdb field nologin).
  nologin  TINYINT NOT NULL DEFAULT 0,
  KEY users_username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- masters holds master users (Dovecot's master passdb): they log in as
-- any user with "user*master".
CREATE TABLE masters (
  username VARCHAR(255) NOT NULL PRIMARY KEY,
  password VARCHAR(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
