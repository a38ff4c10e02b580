# storm: `make demo` runs the pipeline on synthetic data; `make test` runs every test.
# Both install what is missing first: a venv in .venv with the pinned packages and the
# Nextflow runtime from Maven Central. Use your own Nextflow with `make demo NEXTFLOW=nextflow`.

PYTHON   ?= python3
VENV     ?= .venv
NEXTFLOW ?= $(VENV)/bin/nextflow
OUTDIR   ?= results
PYTEST_ARGS ?=

BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.storm-installed

.PHONY: install demo test lint slurm clean

NXF_STAMP := .nextflow-runtime/lib/.complete

install: $(PY_STAMP) $(BIN)/nextflow

$(PY_STAMP): python/pyproject.toml python/requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c python/requirements.lock -e 'python[test]'
	touch $@

# the jars (their stamp) and the launcher: either one missing reinstalls both
$(NXF_STAMP): tools/nextflow-pom.xml tools/install-nextflow
	tools/install-nextflow .nextflow-runtime $(BIN)

$(BIN)/nextflow: $(NXF_STAMP) $(PY_STAMP)
	tools/install-nextflow .nextflow-runtime $(BIN)

# live progress on a terminal, plain lines in a log; -resume: a second demo reuses the first
demo: install
	@if [ -t 1 ]; then ansi=true; else ansi=false; fi; \
	$(NEXTFLOW) run main.nf --input synthetic --outdir $(OUTDIR) -ansi-log $$ansi -resume

test: install lint slurm
	$(BIN)/pytest python/tests tests --durations=25 $(PYTEST_ARGS)

# the SLURM tests start a real single-node cluster: slurm-wlm and munge must be installed
slurm:
	tests/slurm/cluster.sh install

lint: install
	cd python && ../$(BIN)/ruff check . ../tests

clean:
	rm -rf work .nextflow .nextflow.log* $(OUTDIR)
