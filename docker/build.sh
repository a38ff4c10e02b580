#!/usr/bin/env bash
# Build (and with --push, push) storm's images from the repository root:
#   <registry>/storm:<tag>, <registry>/storm-gpu:<tag>, <registry>/storm-state:<tag>, and
#   <registry>/storm-<environment>:<tag> for every model environment (python/envs/<environment>.lock)
# Usage: docker/build.sh [--registry REG] [--tag TAG] [--base IMAGE] [--wheels DIR] [--only NAMES] [--push]
#                        [--digests FILE]
#   --base    the CPU image's base (default: the public python image the Dockerfile names, or
#             where it cannot be pulled, storm-base:bookworm, built by docker/base-image.sh)
#   --wheels  install from this wheel folder only (docker/wheelhouse.sh), served to the builds
#             over HTTP on localhost, so nothing is fetched from the index
#   --only    a comma-separated subset of storm,gpu,state,<environment> (each needs those it
#             builds on to exist with the same tag)
#   --digests with --push, write each pushed image's REGISTRY/NAME@sha256:... to FILE: a run given
#             it as --container_digests pulls exactly these images
# Defaults are the pipeline's: --container_registry's default and storm's version (its images' tag).
# Prints each image's build time and size.
set -euo pipefail
cd "$(dirname "$0")/.."
registry=$(python3 -c 'import json; print(json.load(open("nextflow_schema.json"))["$defs"]["container_options"]["properties"]["container_registry"]["default"])')
version=$(sed -n 's/^version = "\(.*\)"/\1/p' python/pyproject.toml)
tag=$version
push=false
base=""
wheels=""
only=""
digests=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) registry=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --only) only=",$2,"; shift 2 ;;
    --push) push=true; shift ;;
    --digests) digests=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v docker >/dev/null || { echo "error: docker is not installed" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "error: no Docker Engine answers (docker/engine.sh starts one)" >&2; exit 2; }
[[ -z $wheels || -d $wheels ]] || { echo "error: wheel folder $wheels not found (docker/wheelhouse.sh)" >&2; exit 2; }
commit=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
args=(--build-arg "STORM_COMMIT=$commit" --build-arg "STORM_VERSION=$version")
if [[ -z $base ]]; then
  base=$(sed -n 's/^ARG BASE_IMAGE=//p' docker/Dockerfile)
  docker image inspect "$base" >/dev/null 2>&1 || docker pull -q "$base" >/dev/null 2>&1 || base=$(docker/base-image.sh)
fi
args+=(--build-arg "BASE_IMAGE=$base")
if [[ -n $wheels ]]; then
  # a fixed port where free: the URL is a build argument, and a new one would rebuild every layer
  port=$(python3 -c 'import socket
s = socket.socket()
try:
    s.bind(("127.0.0.1", 8477))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 --directory "$wheels" "$port" >/dev/null 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null' EXIT
  # the builds reach the server through the host's network
  args+=(--network host --build-arg "PIP_OPTIONS=--no-index --find-links http://127.0.0.1:$port/")
fi
wanted() { [[ -z $only || $only == *",$1,"* ]]; }
built=()
build() {  # name dockerfile image [build args]
  local name=$1 file=$2 image=$3 started
  shift 3
  wanted "$name" || return 0
  started=$(date +%s)
  docker build --quiet -f "$file" "${args[@]}" "$@" -t "$image" . >/dev/null
  printf '%-28s %5d s  %s\n' "$image" $(( $(date +%s) - started )) \
    "$(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.2f GB", $1 / 1e9}')"
  built+=("$image")
}
cpu="$registry/storm:$tag"
gpu="$registry/storm-gpu:$tag"
build storm docker/Dockerfile "$cpu"
build gpu docker/Dockerfile.gpu "$gpu" --build-arg "BASE_IMAGE=$cpu"
build state docker/Dockerfile.state "$registry/storm-state:$tag" --build-arg "BASE_IMAGE=$gpu"
for lock in python/envs/*.lock; do
  environment=$(basename "$lock" .lock)
  build "$environment" docker/Dockerfile.env "$registry/storm-$environment:$tag" \
    --build-arg "BASE_IMAGE=$gpu" --build-arg "ENVIRONMENT=$environment"
done
if $push; then
  [[ -z $digests ]] || : > "$digests"
  for image in "${built[@]}"; do
    docker push --quiet "$image" >/dev/null
    # the digest the registry now serves the image by
    digest=$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$image" | grep -m1 "^${image%:*}@")
    echo "pushed $image $digest"
    [[ -z $digests ]] || echo "$digest" >> "$digests"
  done
fi
