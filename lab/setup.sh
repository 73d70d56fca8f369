#!/usr/bin/env bash
# lab/setup.sh: makes this machine able to run the compose lab with rootful
# Podman and podman-compose (Debian 12 packages), and builds the Debian 12
# base image every lab image starts FROM, from the host's own apt mirror
# with mmdebstrap (no container registry needed). Idempotent; run as root.
# See /work/shared/reference/containers.md for why each setting is there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
BASE=${LAB_BASE_IMAGE:-localhost/debian:bookworm}

need=0
for c in podman podman-compose runc iptables mmdebstrap; do
  command -v "$c" >/dev/null || need=1
done
[ -x /usr/lib/podman/netavark ] && [ -x /usr/lib/podman/aardvark-dns ] || need=1
if [ "$need" = 1 ]; then
  echo "lab setup: installing podman, podman-compose, runc, netavark, aardvark-dns, iptables, mmdebstrap"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    podman podman-compose runc netavark aardvark-dns iptables mmdebstrap >/dev/null
fi

mkdir -p /etc/containers
if [ ! -e /etc/containers/containers.conf ]; then
  nofile=$(ulimit -Hn)
  cat >/etc/containers/containers.conf <<CONF
[containers]
# podman's default rlimits exceed what this machine allows without
# CAP_SYS_RESOURCE: stay within the hard limits
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]

[network]
# the podman package ships a CNI file but not the CNI plugins
network_backend = "netavark"

[engine]
# crun 1.8 refuses a hybrid cgroup v1/v2 host; runc works
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
# run/create never contact a registry (podman build ignores this key)
pull_policy = "never"
CONF
fi

if ! podman image exists "$BASE"; then
  # The mirror apt already uses (deb822 or one-line sources) becomes the
  # image's sources.list: builds install from the same mirror.
  mirror=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "lab setup: no Debian mirror found in the apt sources" >&2; exit 1; }
  mirror=${mirror%/}
  echo "lab setup: building $BASE with mmdebstrap from $mirror"
  mmdebstrap --quiet --variant=minbase \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm - \
    "deb $mirror bookworm main" \
    "deb $mirror bookworm-updates main" \
    "deb ${mirror}-security bookworm-security main" |
    podman import -q --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
fi
podman image exists "$BASE"
echo "lab setup: $(podman --version), podman-compose $(dpkg-query -W -f='${Version}' podman-compose), base image $BASE"
