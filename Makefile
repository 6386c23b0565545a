# twinflow — the two commands a fresh machine needs:
#   make demo   install into .venv, build the demo twin, run every pipeline, print what was made
#   make test   install into .venv and run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEMO_MEDIA := demo/media/talk.mp4

.PHONY: venv demo demo-media test test-fast lint format bench-plan clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU wheel first, so that nothing pulls another torch build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

venv: $(INSTALLED)

$(DEMO_MEDIA): | $(INSTALLED)
	$(PY) -m twinflow.demo --out demo/media

demo-media: $(DEMO_MEDIA)

demo: $(INSTALLED) $(DEMO_MEDIA)
	$(VENV)/bin/snakemake --profile profiles/local
	$(PY) -m twinflow.summary

# Linting parses the Snakefile, which validates the default (demo) sheets: build their media first.
lint: $(INSTALLED) $(DEMO_MEDIA)
	$(VENV)/bin/ruff check workflow tests
	$(VENV)/bin/ruff format --check workflow tests
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint

test: $(INSTALLED) lint
	$(PY) -m pytest

format: $(INSTALLED)
	$(VENV)/bin/ruff format workflow tests
	$(VENV)/bin/ruff check --fix workflow tests
	$(VENV)/bin/snakefmt Snakefile workflow/rules

bench-plan: $(INSTALLED)
	$(PY) -m tests.bench.plan --twins 10 100 1000

clean:
	rm -rf results logs benchmarks .snakemake demo
