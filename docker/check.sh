#!/usr/bin/env bash
# Check built images by running commands in them, as a task would (non-root, the work folder
# mounted): `storm --version` names the commit built from, the image runs as a non-root user, the
# AWS CLI answers, every model the image serves really imports (`storm models --check`), and one
# tiny TRAIN and PREDICT of one of its models runs on a small synthetic screen.
# Usage: docker/check.sh [--commit C] IMAGE...  (an image named storm-<environment> serves that
# environment's models; storm and storm-gpu storm's own, storm-state State)
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
[[ ${1:-} == --commit ]] && { commit=$2; shift 2; }
[[ $# -gt 0 ]] || { echo "error: name the images to check (see --help in docker/build.sh)" >&2; exit 2; }
work=$(mktemp -d)
chmod 777 "$work"
trap 'rm -rf "$work"' EXIT
in_image() {  # image command...: run as a task runs, in the mounted work folder
  local image=$1
  shift
  docker run --rm -v "$work:$work" -w "$work" "$image" "$@"
}
fail() { echo "error: $image: $*" >&2; exit 1; }
for image in "$@"; do
  name=${image##*/}
  name=${name%%:*}
  case $name in
    storm|storm-gpu) environment=core model=linear_additive sets=(--set max_epochs=1 --set min_steps=1) ;;
    storm-state) environment=state model=state sets=(--set max_steps=2) ;;
    storm-*) environment=${name#storm-} ;;
  esac
  started=$(date +%s)
  version=$(in_image "$image" storm --version)
  [[ $version == *"(commit $commit)"* ]] || fail "storm --version says '$version', not commit $commit"
  [[ $(in_image "$image" id -u) != 0 ]] || fail "runs as root"
  in_image "$image" aws --version >/dev/null || fail "the AWS CLI does not answer"
  in_image "$image" storm -q models --check --environment "$environment" >/dev/null \
    || fail "$(in_image "$image" storm -q models --check --environment "$environment" 2>&1 | grep fails)"
  if [[ $name == storm-* && $name != storm-gpu && $name != storm-state ]]; then
    model=$(in_image "$image" storm -q models --environment "$environment" --json | python3 -c 'import json, sys; print(next(iter(json.load(sys.stdin))))')
    # the smallest budget its config has: a step count, else one epoch
    if in_image "$image" storm -q models --config "$model" | grep -q '^max_steps:'; then
      sets=(--set max_steps=20)
    else
      sets=(--set max_epochs=1)
    fi
  fi
  # a tiny screen, split, prepared and its genes, then the model's TRAIN and PREDICT
  in_image "$image" bash -c "set -e
    storm -q synth --out raw.h5ad --n-genes 60 --n-perturbations 4 --cells-per-pair 12 --controls-per-cell-type 48
    storm -q split --input raw.h5ad --out-dir . --seed 0 --dataset-name seed0
    storm -q prepare --input raw.h5ad --out prepared.h5ad
    storm -q genes --prepared prepared.h5ad --split seed0/split.parquet --n-top-genes 40 --out genes.csv
    storm -q train --prepared prepared.h5ad --split seed0/split.parquet --genes genes.csv --model $model \
      --out-dir model ${sets[*]}
    storm -q predict --prepared prepared.h5ad --split seed0/split.parquet --genes genes.csv --model-dir model \
      --out pred.h5ad" >/dev/null 2>"$work/log" || { tail -5 "$work/log" >&2; fail "TRAIN or PREDICT of $model failed"; }
  rm -rf "${work:?}"/*
  printf '%-28s ok: %s, non-root, aws, %s imports, %s trains and predicts (%d s)\n' "$image" "$version" \
    "$environment" "$model" $(( $(date +%s) - started ))
done
