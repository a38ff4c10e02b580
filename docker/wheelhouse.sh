#!/usr/bin/env bash
# Gather every wheel the images install into one folder (default .wheels/): the core lock, each
# model environment's lock, the AWS CLI and the build backend. pip takes them from its cache when
# `make install` downloaded them already, so building the images fetches nothing twice; a package
# published only as source is built into a wheel here once.
# Usage: docker/wheelhouse.sh [DIR] [PYTHON]   (PYTHON: the pip to use, default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.wheels}
python=${2:-.venv/bin/python}
mkdir -p "$dir"
awscli=$(sed -n 's/^ARG AWSCLI_VERSION=//p' docker/Dockerfile)
backend=$(sed -n 's/^requires = \["\(.*\)"\]/\1/p' python/pyproject.toml)
"$python" -m pip wheel --quiet --no-deps -w "$dir" -r python/requirements.lock
for lock in python/envs/*.lock; do
  "$python" -m pip wheel --quiet --no-deps -w "$dir" -r "$lock"
done
"$python" -m pip wheel --quiet -w "$dir" "awscli==$awscli" "$backend" wheel
echo "$dir: $(ls "$dir" | wc -l) wheels, $(du -sh "$dir" | cut -f1)"
