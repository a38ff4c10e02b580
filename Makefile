# storm: `make demo` runs the pipeline on synthetic data; `make test` runs every test.
# Both install what is missing first: a venv in .venv with the pinned packages and the
# Nextflow runtime from Maven Central; `make test` also builds the model environments (.venv-<name>)
# and storm's images (checked, then the pipeline run inside them). Use your own Nextflow with
# `make demo NEXTFLOW=nextflow`.

PYTHON   ?= python3
VENV     ?= .venv
NEXTFLOW ?= $(VENV)/bin/nextflow
OUTDIR   ?= results
PYTEST_ARGS ?=
# test workers: each takes whole test files (their fixtures stay in one process) and runs one
# thread, so two keep a 2-core machine busy while the other waits on Nextflow, SLURM or a subprocess
TEST_WORKERS ?= 2

BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.storm-installed

.PHONY: install install-models install-env demo test test-deps lint slurm browser clean images docker-tools

NXF_STAMP := .nextflow-runtime/lib/.complete

install: $(PY_STAMP) $(BIN)/nextflow

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): python/pyproject.toml python/requirements.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c python/requirements.lock -e 'python[test]'
	touch $@

# Model environments: a venv beside .venv per python/envs/<name>.lock, for the models whose packages
# clash with storm's core (`storm models` says which model runs in which). install-models builds them
# all at once (the downloads overlap); install-env ENV=<name> builds one. A layered environment sees
# the core's packages, so it waits for them; a standalone one needs only the core's interpreter.
ENVS := $(patsubst python/envs/%.lock,%,$(wildcard python/envs/*.lock))
LAYERED := $(patsubst python/envs/%.lock,%,$(shell grep -l '^# storm-env: layered' python/envs/*.lock))
ENV_STAMPS := $(ENVS:%=.venv-%/.storm-installed)

install-models: install
	$(MAKE) -j$(words $(ENVS)) $(ENV_STAMPS)

install-env: install
	@if [ -f python/envs/$(ENV).lock ]; then $(MAKE) .venv-$(ENV)/.storm-installed; else tools/install-env "$(ENV)"; fi

.venv-%/.storm-installed: python/envs/%.lock python/pyproject.toml python/requirements.lock tools/install-env \
		| $(BIN)/python
	tools/install-env $*

$(LAYERED:%=.venv-%/.storm-installed): $(PY_STAMP)

# the jars (their stamp) and the launcher: either one missing reinstalls both
$(NXF_STAMP): tools/nextflow-pom.xml tools/install-nextflow
	tools/install-nextflow .nextflow-runtime $(BIN)

$(BIN)/nextflow: $(NXF_STAMP) $(PY_STAMP)
	tools/install-nextflow .nextflow-runtime $(BIN)

# live progress on a terminal, plain lines in a log; -resume: a second demo reuses the first
demo: install
	@if [ -t 1 ]; then ansi=true; else ansi=false; fi; \
	$(NEXTFLOW) run main.nf --input synthetic --outdir $(OUTDIR) -ansi-log $$ansi -resume

# everything the tests need, side by side: the standalone environments' downloads and the SLURM
# packages overlap the core's install; then Debian's Docker tools (one apt at a time)
test-deps:
	$(MAKE) -j4 install slurm browser $(ENV_STAMPS)
	$(MAKE) docker-tools

# the report's browser test renders report.html in headless Chromium (Debian's; Playwright drives it);
# after slurm: one apt at a time
browser: slurm
	@command -v chromium-headless-shell >/dev/null || { apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends chromium-headless-shell; }

# tests/containers runs `make images` on one test worker while the other runs the rest of the suite;
# files go out in collection order (tests/conftest.py starts the longest first), not by test count
test: test-deps lint
	OMP_NUM_THREADS=1 $(BIN)/pytest tests python/tests -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--durations=25 $(PYTEST_ARGS)

# storm's images, built and checked (docker/): a Docker Engine (started when none runs), the
# machine's extra CA certificates, every wheel gathered once from pip's cache, the public Python
# base or, where no registry answers, one built by debootstrap; then every image is built and
# checked by running commands in it. IMAGES=storm,gpu builds a subset; IMAGE_REGISTRY=R names them R/storm...
images: install docker-tools
	docker/engine.sh
	cp /usr/local/share/ca-certificates/*.crt docker/certs/ 2>/dev/null || true
	docker/wheelhouse.sh .wheels $(BIN)/python
	docker/build.sh --wheels .wheels $(if $(IMAGE_REGISTRY),--registry $(IMAGE_REGISTRY)) \
		$(if $(IMAGES),--only $(IMAGES)) > .wheels/built.txt; status=$$?; cat .wheels/built.txt; exit $$status
	docker/check.sh $$(awk '{print $$1}' .wheels/built.txt)

# Debian's Docker Engine, debootstrap (the registry-free base) and the reference registry (the push test)
docker-tools:
	@command -v dockerd >/dev/null && command -v debootstrap >/dev/null && command -v docker-registry >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		docker.io debootstrap docker-registry >/dev/null; }

# the SLURM tests start a real single-node cluster: slurm-wlm and munge must be installed
slurm:
	tests/slurm/cluster.sh install

lint: install
	cd python && ../$(BIN)/ruff check . ../tests

clean:
	rm -rf work .nextflow .nextflow.log* $(OUTDIR)
