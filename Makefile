# sparkmlops: `make run` and `make test` bootstrap everything they need.
# Needs only python3.11, Java 17 and Maven (for the Delta jars) on PATH.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
JARS_DIR := $(CURDIR)/.jars
EMR_STANDIN := $(CURDIR)/.emr-standin
ENV ?= local
DATASET ?= penguins
# `make run` runs the pipeline of each: the sample, the same birds labelled by a crowd, and
# a second real dataset brought in through config only
RUN_DATASETS ?= $(DATASET) penguins_crowd flights
PYTEST_ARGS ?=

export SPARKMLOPS_JARS_DIR := $(JARS_DIR)
# the scripts (cluster, mlflow server, wheel build) use the venv make built (VENV=.venv-py312 too)
export SPARKMLOPS_VENV := $(CURDIR)/$(VENV)
export PYSPARK_PYTHON := $(BIN)/python
export PYSPARK_DRIVER_PYTHON := $(BIN)/python
export PATH := $(BIN):$(PATH)

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup venv jars emr-standin browser tools wheel run test test-fast audit bench bench-ingest bench-validate bench-repeated-keys bench-train bench-score bench-labels lint clean clean-state help

help:
	@echo "make run    - bootstrap, then run the whole pipeline on the bundled samples"
	@echo "make test   - bootstrap, then run the whole test suite"
	@echo "make bench  - bootstrap, then benchmark the platform against bare PySpark"
	@echo "make lint   - ruff, mypy and the import layers (lint-imports)"
	@echo "make audit  - bandit, detect-secrets (baseline), pip-audit of the lock (docs/security.md)"
	@echo "make wheel  - build dist/sparkmlops-<version>-py3-none-any.whl (with its conf defaults)"

setup: venv jars

venv: $(VENV)/.installed
$(VENV)/.installed: deps/requirements.lock deps/bootstrap.txt setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r deps/bootstrap.txt
	$(BIN)/python -m pip install -q -c deps/requirements.lock -e '.[dev,local]'
	touch $@

# Delta jars from Maven Central (the delta-spark wheel ships no jars), cached in .jars/:
# with Maven when it is installed (pinned by deps/pom.xml), else with Spark's own Ivy.
# Resolved into .jars.tmp/ and moved into place, so a failed or interrupted resolution
# never leaves a half-filled .jars/ (nor takes one away from a running test); only the
# pom decides the jars, so reinstalling the venv (a setup.cfg or lock change) keeps them.
# Then spark-defaults.conf in the venv's Spark, so a bare `spark-submit` has Delta too:
# written again whenever the venv or the jars change.
setup: $(VENV)/.spark-defaults
jars: $(JARS_DIR)/.resolved
$(JARS_DIR)/.resolved: deps/pom.xml | $(VENV)/.installed
	rm -rf $(JARS_DIR).tmp && mkdir -p $(JARS_DIR).tmp
	if command -v mvn >/dev/null; then \
	    mvn -q -B -f deps/pom.xml dependency:copy-dependencies \
	        -DincludeGroupIds=io.delta,io.unitycatalog -DincludeScope=runtime \
	        -DoutputDirectory=$(JARS_DIR).tmp; \
	else \
	    echo "mvn not found: resolving the Delta jars with Spark's Ivy"; \
	    $(BIN)/python -m sparkmlops.spark resolve-with-ivy --jars-dir $(JARS_DIR).tmp \
	        --ivy-dir $(CURDIR)/.ivy2; \
	fi
	touch $(JARS_DIR).tmp/.resolved
	rm -rf $(JARS_DIR) && mv $(JARS_DIR).tmp $(JARS_DIR)

$(VENV)/.spark-defaults: $(VENV)/.installed $(JARS_DIR)/.resolved
	$(BIN)/python -m sparkmlops.spark write-spark-defaults --jars-dir $(JARS_DIR)
	touch $@

# The EMR stand-in that tests/e2e/test_emr_standin.py runs the wheel on: EMR release
# emr-spark-8.0.0's Spark 4.0.2 / Delta 4.0.0 in a venv of its own, the Delta and s3a jars
# from Maven Central (scripts/emr-standin.sh). Cached in .emr-standin/: the script rebuilds
# it only when the poms, the lock, setup.cfg or the script change (about 1-2 min).
emr-standin:
	scripts/emr-standin.sh build $(EMR_STANDIN)

# Headless Chromium renders the Data Docs in a test: Debian's package, installed once
# (as root with apt-get, as CI runs); elsewhere, install it yourself or set CHROMIUM.
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "installing Debian's chromium for the Data Docs rendering test"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	            --no-install-recommends chromium >/dev/null; \
	    else \
	        echo "no Chromium at $(CHROMIUM): install Debian's chromium (or set CHROMIUM=...)" \
	             "for the Data Docs rendering test" >&2; exit 1; \
	    fi; \
	fi

# The wheel carries the code and the packaged conf defaults; Spark and Delta are the
# `local` extra (a cluster brings its own). Built offline by the venv's pinned setuptools.
wheel: venv
	PYTHON=$(BIN)/python scripts/build-wheel.sh $(CURDIR)/dist

# The generated deploy files checked by the platforms' own tools: the official Databricks
# CLI (built from the Go module proxy into .tools/, `bundle validate -t dev|prod` against a
# loopback stub workspace, asserted by tests/platform/), actionlint and shellcheck.
# Needs Go; BUNDLE_CHECK_DIR keeps the rendered files and the CLI's output there.
.PHONY: bundle-check
bundle-check: venv
	PYTHON=$(BIN)/python scripts/bundle-check.sh $(BUNDLE_CHECK_DIR)

run: setup
	set -e; for dataset in $(RUN_DATASETS); do \
	    $(BIN)/sparkmlops pipeline --env $(ENV) --dataset $$dataset; echo; \
	done

# actionlint (and Debian's shellcheck) for the workflow checks of the suite: built once
# from the Go module proxy into .tools/ (11 s cold)
tools:
	PLATFORM_TOOLS=actionlint scripts/platform-tools.sh >/dev/null

# The EMR stand-in (a second venv: a minute, mostly downloads) builds in the background
# while the suite runs; its e2e fixture waits for it (scripts/emr-standin.sh holds a lock
# while it builds) and the build's log is shown if it failed.
test: setup browser tools
	@scripts/emr-standin.sh build $(EMR_STANDIN) >$(EMR_STANDIN).log 2>&1 & standin=$$!; \
	SPARKMLOPS_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS); code=$$?; \
	wait $$standin || { echo "EMR stand-in build failed:"; cat $(EMR_STANDIN).log; }; \
	exit $$code

test-fast: setup
	$(BIN)/python -m pytest -m "not e2e" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/ingest_bench.py $(BENCH_INGEST_ARGS)
	$(BIN)/python benchmarks/validate_bench.py $(BENCH_VALIDATE_ARGS)
	$(BIN)/python benchmarks/repeated_keys_bench.py $(BENCH_REPEATED_KEYS_ARGS)
	$(BIN)/python benchmarks/train_bench.py $(BENCH_TRAIN_ARGS)
	$(BIN)/python benchmarks/score_bench.py $(BENCH_SCORE_ARGS)

bench-validate: setup
	$(BIN)/python benchmarks/validate_bench.py $(BENCH_VALIDATE_ARGS)

bench-repeated-keys: setup
	$(BIN)/python benchmarks/repeated_keys_bench.py $(BENCH_REPEATED_KEYS_ARGS)

bench-ingest: setup
	$(BIN)/python benchmarks/ingest_bench.py $(BENCH_INGEST_ARGS)

bench-train: setup
	$(BIN)/python benchmarks/train_bench.py $(BENCH_TRAIN_ARGS)

bench-score: setup
	$(BIN)/python benchmarks/score_bench.py $(BENCH_SCORE_ARGS)

bench-labels: setup
	test -x .venv-crowdkit/bin/python || $(PYTHON) -m venv .venv-crowdkit
	cmp -s deps/bench-labels.txt .venv-crowdkit/.installed || { .venv-crowdkit/bin/python -m pip install -q --no-deps -r deps/bench-labels.txt && cp deps/bench-labels.txt .venv-crowdkit/.installed; }
	$(BIN)/python benchmarks/labels_bench.py $(BENCH_LABELS_ARGS)

# The security scans (scripts/audit.py): bandit on lib/ and jobs/ and detect-secrets against
# .secrets.baseline (offline; the suite runs them too), then pip-audit of deps/requirements.lock
# against PyPI, else OSV. Exit 1: a finding; exit 3: no finding, but packages no service could
# check (named; AUDIT_ARGS=--allow-unchecked makes that 0, the NOT CHECKED line stays).
AUDIT_ARGS ?=
audit: venv
	$(BIN)/python scripts/audit.py all $(AUDIT_ARGS)

lint: setup
	$(BIN)/ruff check lib jobs tests benchmarks
	$(BIN)/mypy lib/sparkmlops
	cd lib && ../$(BIN)/lint-imports --config ../setup.cfg

clean-state:
	rm -rf .sparkmlops

clean: clean-state
	rm -rf $(VENV) $(JARS_DIR) $(JARS_DIR).tmp $(EMR_STANDIN) $(EMR_STANDIN).lock $(EMR_STANDIN).log dist spark-warehouse metastore_db derby.log
