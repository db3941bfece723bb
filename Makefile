# gridscore: the two commands a new user runs are `make repro` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install browser plots-offline repro test lint bench bench-fasttreeshap clean help

help:
	@echo "make repro  - create .venv, install pinned dependencies, run the DVC pipeline (dvc repro)"
	@echo "make test   - install if needed, run the test suite"
	@echo "make lint   - ruff check and format check"
	@echo "make bench  - generator and feature-engine benchmarks at 1,000,000 customers (docs/benchmarks.md)"

# Install the project with the exact versions in requirements.lock (pip constraints).
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,spark]'
	$(BIN)/python -m pipelines.warm
	$(MAKE) --no-print-directory plots-offline
	touch $(STAMP)

install: $(STAMP)

repro: install
	$(BIN)/dvc repro

# `dvc plots show` offline: the Vega builds DVC's page names, from the npm registry, inlined in
# a template (pipelines/offline_plots.py) that .dvc/config.local points at.
VEGA := vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2
plots-offline:
	@mkdir -p .dvc/tmp/npm
	@if (cd .dvc/tmp/npm && npm pack --silent $(VEGA) >/dev/null 2>&1); then \
	  $(BIN)/python -m pipelines.offline_plots .dvc/tmp/npm .dvc/plots/offline.html >/dev/null && \
	  $(BIN)/dvc config --local plots.html_template plots/offline.html; \
	else echo "warning: npm could not fetch $(VEGA): dvc plots show loads Vega from its CDN"; fi

# Debian's Chromium, for the test that opens the HTML report in a real headless browser.
browser:
	@command -v chromium >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }; }

test: install browser
	$(BIN)/python -m pytest -n 3 --dist loadgroup --durations=15

lint: install
	$(BIN)/ruff check features models pipelines tests benchmarks examples
	$(BIN)/ruff format --check features models pipelines tests benchmarks examples

bench: install
	$(BIN)/python benchmarks/bench_generator.py --customers 1000000 --months 36
	$(BIN)/python benchmarks/features.py --customers 1000000 --months 36

# FastTreeSHAP measured against LightGBM's own TreeSHAP (issue 17; docs/benchmarks.md): it is
# no dependency of the project, so it gets a venv of its own.
FTS := .bench/fasttreeshap-venv
bench-fasttreeshap: install
	@test -x $(FTS)/bin/python || { $(PYTHON) -m venv $(FTS) && $(FTS)/bin/pip install --quiet \
	  fasttreeshap-fixed==0.1.5 slicer numba cloudpickle tqdm psutil pyarrow \
	  $$(grep -iE '^(lightgbm|numpy|pandas)==' requirements.lock); }
	$(BIN)/python benchmarks/fasttreeshap.py --dump
	$(FTS)/bin/python benchmarks/fasttreeshap.py --measure

clean:
	rm -rf $(VENV) data artifacts reports mlflow.db mlartifacts .pytest_cache .bench
