-- The lab's changes to the seed (sql/seed.sql):
-- pinned users name the container backend2 (the seed says 127.0.0.12, the
-- integration tests' second backend), as the lab's LDAP does;
UPDATE users SET mailhost = 'backend2' WHERE mailhost = '127.0.0.12';
-- and one user exists only here, so that a login shows the SQL passdb
-- answering after LDAP did not know the user. Password pw-sqluser.
INSERT INTO users (userid, username, domain, password, mailhost, nologin)
VALUES ('sqluser@example.net', 'sqluser', 'example.net',
        '{SHA512-CRYPT}$6$wWA7irwSF1NqyRjb$v/yFnz4X.tcl2R4.CFDo5ciE69.bp3xdltQD0j8O7homqhQf8JSAYiWfCzANDsEh1J.pstG3Wyxd4oj8olO.H1', NULL, 0);
