#!/bin/sh
# lab-dovecot: pins the addresses of LDAP and MariaDB (lab/hosts.sh says
# why), names this backend in its IMAP ID answer (x-backend), so
# that a client logged in through a gateway can tell where it landed, and
# runs Dovecot in the foreground.
set -eu
name=${BACKEND_NAME:?BACKEND_NAME is not set}
. /usr/local/lib/lab-hosts.sh
pin_hosts ldap mariadb
# (the value must not end in a quote: Dovecot would take the outer quotes
# for the value's own)
printf 'imap_id_send = "x-backend" "%s" "name" *\n' "$name" >/etc/dovecot/backend.conf
# a new volume belongs to root
chown vmail:vmail /srv/mail
exec dovecot -F
