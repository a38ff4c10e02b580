#!/usr/bin/env bash
# Make sure a Docker Engine answers: start dockerd (Debian's docker.io; installed when missing, as
# root) if none is running, and wait until it does. Its log: ${DOCKERD_LOG:-/var/log/dockerd.log}.
# Usage: docker/engine.sh
set -euo pipefail
docker info >/dev/null 2>&1 && exit 0
if ! command -v dockerd >/dev/null; then
  [[ $(id -u) == 0 ]] || { echo "error: no Docker Engine: install docker.io (or Docker) first" >&2; exit 2; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
[[ $(id -u) == 0 ]] || { echo "error: the Docker Engine is not running; start it (sudo dockerd &)" >&2; exit 2; }
log=${DOCKERD_LOG:-/var/log/dockerd.log}
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "error: dockerd did not answer within 60 s; its log: $log" >&2
tail -5 "$log" >&2
exit 1
