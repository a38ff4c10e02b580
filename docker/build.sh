#!/usr/bin/env bash
# Build (and with --push, push) storm's images from the repository root:
#   <registry>/storm:<tag> and <registry>/storm-gpu:<tag>
# Usage: docker/build.sh [--registry REG] [--tag TAG] [--push]
# Defaults match nextflow.config's params.container_registry and params.container_tag.
set -euo pipefail
registry=ghcr.io/storm-bio
tag=0.1.0
push=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) registry=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --push) push=true; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
command -v docker >/dev/null || { echo "error: docker is not installed" >&2; exit 2; }
cpu="$registry/storm:$tag"
gpu="$registry/storm-gpu:$tag"
docker build -f docker/Dockerfile -t "$cpu" .
docker build -f docker/Dockerfile.gpu --build-arg "BASE_IMAGE=$cpu" -t "$gpu" .
if $push; then
  docker push "$cpu"
  docker push "$gpu"
fi
echo "built $cpu and $gpu"
