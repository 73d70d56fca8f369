#!/bin/sh
# lab-mariadb: runs the lab's mariadbd in the foreground, or, with
# "--seed DIR" (at image build time), creates the maildirector database
# and account and loads DIR/schema.sql, seed.sql and lab.sql into it.
set -eu
# no io_uring/libaio: container seccomp profiles often forbid them
flags="--user=mysql --skip-name-resolve --skip-log-bin --innodb-use-native-aio=0 --innodb-buffer-pool-size=32M --innodb-log-file-size=8M"
install -d -o mysql -g mysql /run/mysqld
if [ "${1:-}" != "--seed" ]; then
  exec mariadbd $flags --bind-address=0.0.0.0 --port=3306
fi
dir=$2
mariadbd $flags --skip-networking &
pid=$!
i=0
until mariadb-admin --silent ping >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -lt 120 ] || { echo "mariadbd did not start" >&2; exit 1; }
  sleep 0.5
done
{
  echo "CREATE DATABASE maildirector CHARACTER SET utf8mb4;"
  echo "CREATE USER 'maildirector'@'%' IDENTIFIED BY 'maildirectorpw';"
  echo "GRANT SELECT ON maildirector.* TO 'maildirector'@'%';"
} | mariadb
for f in schema.sql seed.sql lab.sql; do
  mariadb maildirector <"$dir/$f"
done
echo "seeded: $(mariadb -N maildirector -e 'SELECT COUNT(*) FROM users') users"
mariadb-admin shutdown
wait "$pid"
