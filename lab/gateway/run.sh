#!/bin/sh
# lab-gateway: writes this gateway's configuration and runs it. Addresses
# are only known once the containers run: the backends' (the Director
# ring hashes IPs, so director.backends must be addresses) and this
# gateway's own (its embedded etcd member listens on it). The peers are
# named in initial_cluster (gw1..gw3).
set -eu
name=${GW_NAME:?GW_NAME is not set}
token=${LAB_ADMIN_TOKEN:?LAB_ADMIN_TOKEN is not set}
. /usr/local/lib/lab-hosts.sh

pin_hosts ldap mariadb backend1 backend2 gw1 gw2 gw3
self=$(hostname -I | awk '{ print $1 }')
b1=$(resolve backend1)
b2=$(resolve backend2)
sed -e "s/@NAME@/$name/g" -e "s/@SELF@/$self/g" -e "s/@BACKEND1@/$b1/g" -e "s/@BACKEND2@/$b2/g" \
  /etc/maildirector/maildirector.yaml.in >/etc/maildirector/maildirector.yaml
umask 077
printf 'lab %s\n' "$token" >/etc/maildirector/admin-tokens
install -d -m 0700 /var/lib/maildirector /run/maildirector
echo "lab-gateway $name: address $self, backends backend1=$b1 backend2=$b2"
exec maildirector serve -c /etc/maildirector/maildirector.yaml
