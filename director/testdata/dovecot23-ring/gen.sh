#!/usr/bin/env bash
# Regenerates the Dovecot 2.3 Director consistent-hashing test vectors in this
# directory (<set>.tsv) by asking a REAL Dovecot Director which backend each
# user hashes to ("Hashed:" line of `doveadm director status USER`).
#
# Requirements: run as root on a machine with Dovecot 2.3 installed
# (`dovecot`, `doveadm` in PATH; system users dovecot/dovenull). The system
# Dovecot service is not touched: a private instance with its own base_dir,
# state_dir and log is started in a temp dir and stopped again for each set.
#
# Usage: ./gen.sh            (idempotent; rewrites all <set>.tsv files)
set -euo pipefail

OUT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="${DIRECTOR_TEST_PORT:-19090}"
TMP="$(mktemp -d /tmp/dovecot23-ring.XXXXXX)"
CONF=""

die() { echo "gen.sh: $*" >&2; exit 1; }

stop_instance() {
  [ -n "$CONF" ] || return 0
  local pidfile="$TMP/run/master.pid"
  if [ -f "$pidfile" ]; then
    dovecot -c "$CONF" stop >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
      [ -f "$pidfile" ] || break
      sleep 0.1
    done
    [ -f "$pidfile" ] && die "private dovecot did not stop (pid $(cat "$pidfile"))"
  fi
  return 0
}
cleanup() { stop_instance || true; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "must run as root"
command -v dovecot >/dev/null && command -v doveadm >/dev/null || die "dovecot/doveadm not in PATH"
VERSION="$(dovecot --version)"
case "$VERSION" in 2.3.*) ;; *) die "need Dovecot 2.3.x, found $VERSION" ;; esac
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "port 127.0.0.1:$PORT is in use; set DIRECTOR_TEST_PORT"
fi

# ---------------------------------------------------------------- users ----
# Deterministic list of 1100 usernames (same for every set):
#   700 userNNNN@example.com                 (0000..0699)
#   100 User0NNN@Example.COM                 (000..099; lower-cased by %Lu they
#                                             equal user0000..user0099@example.com)
#   100 u-NNN                                (bare local parts, 000..099)
#   100 first.last+tag.NNN@sub.example.org   (000..099)
#    40 userNNN@example.org                  (000..039; what auth.default_realm
#                                             example.org makes of "userNNN":
#                                             integration/realm_test.go)
#    60 names in UTF-8 and mixed case, below: Dovecot's %L lower-cases ASCII
#       letters only (str_lcase/i_tolower), so "Ärger" hashes as "Ärger", not
#       as "ärger"; and Unicode's own lower-casing would even turn the KELVIN
#       SIGN into an ASCII "k" and "İ" into "i" plus a combining dot.
USERS="$TMP/users.txt"
{
  for i in $(seq 0 699); do printf 'user%04d@example.com\n' "$i"; done
  for i in $(seq 0 99);  do printf 'User0%03d@Example.COM\n' "$i"; done
  for i in $(seq 0 99);  do printf 'u-%03d\n' "$i"; done
  for i in $(seq 0 99);  do printf 'first.last+tag.%03d@sub.example.org\n' "$i"; done
  for i in $(seq 0 39);  do printf 'user%03d@example.org\n' "$i"; done
  cat <<'NAMES'
Ärger@example.org
ÄRGER@EXAMPLE.ORG
ärger@example.org
ÄrGeR@Example.Org
Ölçü@example.org
ÖLÇÜ@EXAMPLE.ORG
ölçü@example.org
ÉCOLE@x
École@X
école@x
ÉCOLE@École.FR
Straße@example.de
STRASSE@example.de
STRAẞE@example.de
straße@example.de
Σίσυφος@example.gr
ΣΊΣΥΦΟΣ@EXAMPLE.GR
σίσυφος@example.gr
ПОЧТА@пример.рф
Почта@Пример.РФ
почта@пример.рф
İstanbul@example.com.tr
ISTANBUL@example.com.tr
ıstanbul@example.com.tr
istanbul@example.com.tr
Kelvin@example.org
KELVIN@EXAMPLE.ORG
Kelvin@example.org
kelvin@example.org
Ångström@example.org
Ångström@example.org
ångström@example.org
ǅemal@example.ba
ǄEMAL@EXAMPLE.BA
ǆemal@example.ba
ŁÓDŹ@example.pl
Łódź@example.pl
łódź@example.pl
ÆØÅ@example.no
æøå@example.no
ＡＢＣ@example.jp
ａｂｃ@example.jp
Ⅻ@example.org
ⅻ@example.org
Ⓐ@example.org
ⓐ@example.org
ÿ@example.org
Ÿ@example.org
Ĳssel@example.nl
ĳssel@example.nl
MiXeD.CaSe@Example.ORG
mixed.case@example.org
ALLCAPS@EXAMPLE.COM
mIxEd-0042@ExAmPlE.CoM
USER0042@EXAMPLE.ORG
User0042@Example.Org
UsEr0042@eXaMpLe.OrG
USER0042
User0042
FIRST.LAST+TAG.007@SUB.EXAMPLE.ORG
NAMES
} > "$USERS"
[ "$(wc -l < "$USERS")" = 1100 ] || die "user list is not 1100 lines: $(wc -l < "$USERS")"

# ----------------------------------------------------------------- sets ----
# name | director_mail_servers | runtime vhost updates (ip=n ...) | hosts to mark down
SETS=(
  "two-default|127.0.0.11 127.0.0.12||"
  "three-weighted|127.0.0.21 127.0.0.22 127.0.0.23|127.0.0.21=50 127.0.0.23=200|"
  "range-mixed|127.0.0.31-127.0.0.35|127.0.0.33=1 127.0.0.34=1000|"
  "with-down|127.0.0.41 127.0.0.42 127.0.0.43||127.0.0.42"
)

write_conf() { # $1 = director_mail_servers
  cat > "$CONF" <<EOF
# private, throw-away Dovecot instance used only to compute test vectors
base_dir = $TMP/run
state_dir = $TMP/state
log_path = $TMP/dovecot.log
instance_name = dovecot-ring-testgen
protocols =
listen = 127.0.0.1
ssl = no
director_servers = 127.0.0.1:$PORT
director_mail_servers = $1
# director_username_hash left at its default (%Lu)
passdb {
  driver = static
  args = nopassword=y
}
service director {
  # ring port; the default service also has unix_listener director-admin,
  # which is what "doveadm -c CONF director ..." talks to
  inet_listener {
    address = 127.0.0.1
    port = $PORT
  }
}
EOF
}

D() { doveadm -c "$CONF" director "$@"; }

wait_ring_synced() {
  for _ in $(seq 1 100); do
    local st
    st="$(D ring status 2>/dev/null || true)"
    case "$st" in *"ring synced"*) return 0 ;; esac
    sleep 0.1
  done
  cat "$TMP/dovecot.log" >&2 || true
  die "director ring never became synced"
}

for spec in "${SETS[@]}"; do
  IFS='|' read -r name servers updates downs <<< "$spec"
  echo "== $name: director_mail_servers = $servers" >&2
  rm -rf "$TMP/run" "$TMP/state" "$TMP/dovecot.log"
  mkdir -p "$TMP/run" "$TMP/state"
  CONF="$TMP/$name.conf"
  write_conf "$servers"
  doveconf -c "$CONF" -n >/dev/null || die "invalid config for $name"
  dovecot -c "$CONF" || { cat "$TMP/dovecot.log" >&2; die "dovecot failed to start"; }
  wait_ring_synced

  applied=()
  for u in $updates; do
    D update "${u%%=*}" "${u#*=}"
    applied+=("doveadm director update ${u%%=*} ${u#*=}")
  done
  for h in $downs; do
    D down "$h"
    applied+=("doveadm director down $h")
  done
  wait_ring_synced

  # Verify that vhost counts / states really were applied and build the
  # machine-readable backends line from what the director reports.
  declare -A want=()
  for u in $updates; do want[${u%%=*}]=${u#*=}; done
  backends=""
  # (tabs -> '|' because IFS=<tab> would collapse the empty tag column)
  while IFS='|' read -r ip tag vhosts state _changed _users; do
    [ "$ip" = "mail server ip" ] && continue
    [ -z "$tag" ] || die "$name: unexpected tag '$tag' on $ip"
    exp=${want[$ip]:-100}
    [ "$vhosts" = "$exp" ] || die "$name: $ip has vhosts=$vhosts, want $exp"
    expstate=up
    for h in $downs; do [ "$h" = "$ip" ] && expstate=down; done
    [ "$state" = "$expstate" ] || die "$name: $ip is $state, want $expstate"
    entry="$ip=$vhosts"
    [ "$state" = down ] && entry="$entry:down"
    backends="${backends:+$backends }$entry"
  done < <(doveadm -c "$CONF" -f tab director status | tr '\t' '|')
  unset want
  [ -n "$backends" ] || die "$name: empty host table"
  # human-readable table; "state changed" timestamps masked for reproducibility
  table="$(D status | sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}/YYYY-MM-DD hh:mm:ss/')"

  tmp_out="$TMP/$name.tsv"
  {
    echo "# Dovecot Director consistent-hash test vectors, set \"$name\"."
    echo "# Generated by director/testdata/dovecot23-ring/gen.sh with a real Dovecot $VERSION"
    echo "# director (single-director ring, director_username_hash = %Lu, no tags)."
    echo "# config: director_mail_servers = $servers"
    for a in "${applied[@]}"; do echo "# then:   $a"; done
    echo "# command: doveadm -c CONF director status <username>  -> value of its \"Hashed:\" line"
    echo "# backends: $backends"
    echo "# doveadm -c CONF director status (state-changed time masked):"
    while IFS= read -r line; do echo "#   $line"; done <<< "$table"
    echo "# columns: username<TAB>hashed_ip  (username exactly as passed to doveadm)"
  } > "$tmp_out"

  n=0
  while IFS= read -r user; do
    out="$(D status "$user")" || die "$name: lookup of $user failed"
    hashed="$(printf '%s\n' "$out" | sed -n 's/^Hashed: *//p')"
    [[ "$hashed" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$name: bad Hashed for $user: $out"
    printf '%s\t%s\n' "$user" "$hashed" >> "$tmp_out"
    n=$((n + 1))
  done < "$USERS"
  [ "$n" = 1100 ] || die "$name: only $n lookups"

  if grep -E 'Error|Fatal|Panic' "$TMP/dovecot.log" >&2; then die "$name: errors in dovecot log"; fi
  stop_instance
  mv "$tmp_out" "$OUT_DIR/$name.tsv"
  echo "   wrote $OUT_DIR/$name.tsv" >&2
done
