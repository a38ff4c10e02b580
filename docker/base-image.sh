#!/usr/bin/env bash
# Build a base image without any image registry: Debian bookworm by debootstrap from the apt
# mirror this machine uses, with Python 3.11 in a venv on PATH (as the public python image has
# python and pip on PATH), tkinter (cpa imports it), procps and ca-certificates. Kept when it exists.
# Usage: docker/base-image.sh [IMAGE]   (default storm-base:bookworm; needs root and debootstrap)
set -euo pipefail
image=${1:-storm-base:bookworm}
docker image inspect "$image" >/dev/null 2>&1 && { echo "$image"; exit 0; }
command -v debootstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}
# the first Debian mirror apt names (either sources format); deb.debian.org where none is found
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
  | grep -oE '^(URIs:|deb) +https?://[^ ]+/debian\b' | head -1 | awk '{print $2}') || true
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=ca-certificates,python3,python3-venv,python3-tk,procps bookworm "$root" \
  "${mirror:-http://deb.debian.org/debian}" >/dev/null
chroot "$root" python3 -m venv /opt/python
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - "$image" >/dev/null
echo "$image"
