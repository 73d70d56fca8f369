# lab/hosts.sh, sourced by the gateway's and the client's start scripts.
#
# pin_hosts NAME... waits until every NAME resolves on the compose network
# (the containers start in any order), then writes their addresses into
# /etc/hosts. Why: Podman 4.3's DNS (aardvark-dns 1.4) sometimes leaves a
# fresh container's queries unanswered for its first 15-60 s; Go's resolver
# then gives up ("lookup ldap: i/o timeout"), which failed LDAP logins and
# the etcd members' lease renewals. Resolved once, the lab never asks again.
# The lab's containers are created and removed together (scripts/lab), so
# the addresses cannot go stale.

# resolve NAME prints NAME's IPv4 address, waiting up to two minutes.
resolve() {
  _i=0
  while :; do
    _ip=$(getent ahostsv4 "$1" | awk 'NR == 1 { print $1 }')
    if [ -n "$_ip" ]; then
      echo "$_ip"
      return 0
    fi
    _i=$((_i + 1))
    if [ "$_i" -ge 240 ]; then
      echo "lab: $1 does not resolve" >&2
      return 1
    fi
    sleep 0.5
  done
}

pin_hosts() {
  _entries=""
  for _n in "$@"; do
    _ip=$(resolve "$_n") || exit 1
    _entries="$_entries$_ip $_n # lab-hosts
"
  done
  # /etc/hosts is a bind mount: rewrite it in place, dropping the lines of
  # an earlier start
  grep -v ' # lab-hosts$' /etc/hosts >/tmp/hosts.lab || true
  printf '%s' "$_entries" >>/tmp/hosts.lab
  cat /tmp/hosts.lab >/etc/hosts
  rm -f /tmp/hosts.lab
}
