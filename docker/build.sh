#!/usr/bin/env bash
# Build (and with --push, push) storm's images from the repository root:
#   <registry>/storm:<tag>, <registry>/storm-gpu:<tag>, <registry>/storm-state:<tag>, and
#   <registry>/storm-<environment>:<tag> for every model environment (python/envs/<environment>.lock)
# Usage: docker/build.sh [--registry REG] [--tag TAG] [--push]
# Defaults are the pipeline's: --container_registry's default and storm's version (its images' tag).
set -euo pipefail
cd "$(dirname "$0")/.."
registry=$(python3 -c 'import json; print(json.load(open("nextflow_schema.json"))["$defs"]["container_options"]["properties"]["container_registry"]["default"])')
tag=$(sed -n 's/^version = "\(.*\)"/\1/p' python/pyproject.toml)
push=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) registry=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --push) push=true; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v docker >/dev/null || { echo "error: docker is not installed" >&2; exit 2; }
cpu="$registry/storm:$tag"
gpu="$registry/storm-gpu:$tag"
state="$registry/storm-state:$tag"
docker build -f docker/Dockerfile -t "$cpu" .
docker build -f docker/Dockerfile.gpu --build-arg "BASE_IMAGE=$cpu" -t "$gpu" .
docker build -f docker/Dockerfile.state --build-arg "BASE_IMAGE=$gpu" -t "$state" .
images=("$cpu" "$gpu" "$state")
for lock in python/envs/*.lock; do
  environment=$(basename "$lock" .lock)
  image="$registry/storm-$environment:$tag"
  docker build -f docker/Dockerfile.env --build-arg "BASE_IMAGE=$gpu" --build-arg "ENVIRONMENT=$environment" \
    -t "$image" .
  images+=("$image")
done
if $push; then
  for image in "${images[@]}"; do docker push "$image"; done
fi
echo "built ${images[*]}"
