# Two commands on a fresh machine: `make run` (the workflow on the embedded default world) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Rules call `python -m geocontrast...`: put the virtualenv first on PATH for them.
export PATH := $(CURDIR)/$(BIN):$(PATH)
STAMP := $(VENV)/.installed
CORES ?= all
# Without an NVIDIA GPU the torch jobs run side by side on one core each (profiles/cpu); with one, profiles/default.
PROFILE ?= $(shell nvidia-smi -L > /dev/null 2>&1 && echo default || echo cpu)

.PHONY: setup run test test-extended test-shapes bench dry-run lint clean results-doc rulegraph-doc

setup: $(STAMP)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

# The workflow, then its HTML report (every figure with its caption) gathered from the cached outputs.
run: $(STAMP)
	$(BIN)/snakemake --workflow-profile profiles/$(PROFILE) --cores $(CORES)
	$(BIN)/snakemake --report results/report.html

# CI gates first (formatting and Snakemake's linter), then the suite with one end-to-end workflow run, the tiny
# world's. Two workers (measured faster on 2 cores); --dist loadfile keeps a file's shared workflow runs on one worker.
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The runs `make test` leaves out (marker `extended`, ~4-5 min on 2 cores): workflow runs killed inside a stage and
# resumed, the module deployment, the cluster executor with a two-process pretraining, an iNaturalist export and a
# DwC-A archive, the no-coordinate collection to the report; training on two gloo processes against one. CI runs
# them after `make test`.
test-extended: $(STAMP)
	$(BIN)/python -m pytest -m extended -n 2 --dist loadfile

# Every collection shape of tests/shapes.py (no coordinates, a few, one site, one cell, two far-apart clusters,
# a partial taxonomy) through the tiny workflow to results.csv and the report; left out of `make test` (pyproject's
# addopts deselect the shapes marker; the no-coordinate shape runs in `make test-extended`).
test-shapes: $(STAMP)
	$(BIN)/python -m pytest -m shapes -n 2 --dist load --durations 0 tests/test_collection_shapes.py

# Every benchmark in bench/ (figures to bench/results/, summary.md against the targets); lightly is installed only
# here, as the reference pipeline.
bench: $(STAMP)
	$(BIN)/python -m pip install -e '.[bench]'
	$(BIN)/python bench/run_all.py

# docs/results.md's generated section from the last `make run` (its summary and comparisons, with the date, this
# machine and the config); the hand-written tables around it are kept.
results-doc: $(STAMP)
	$(BIN)/python -m geocontrast.report.results_doc results/synthetic_flora --config config/config.yaml \
		--out docs/results.md

# The rule graph in docs/architecture.md from `snakemake --rulegraph` of the default config (tests/test_docs.py
# checks that they agree).
rulegraph-doc: $(STAMP)
	$(BIN)/python docs/rulegraph.py

dry-run: $(STAMP)
	$(BIN)/snakemake -n

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/snakefmt --check workflow/Snakefile workflow/rules/*.smk
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
