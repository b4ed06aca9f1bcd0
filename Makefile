# The two commands: `make demo` runs the product against the local cluster, `make test` runs every test.
# Each step installs what is missing and skips what is already there.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.requirements-$(shell sha256sum requirements.txt | cut -c1-16)

.PHONY: demo test test-teardown venv services cluster test-tools lint check bench-snapshot bench-metrics bench-diff clean-cluster

demo: venv
	scripts/demo

test: venv services cluster test-tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest
	$(MAKE) test-teardown

# Takes the local cluster down and checks that the real node left nothing behind: run after the rest
# (pyproject's addopts leave `teardown` tests out of the main run).
test-teardown: venv services
	$(VENV)/bin/pytest -m teardown tests/test_real_node_down.py

venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.requirements-* && touch $@

services:
	scripts/services up

cluster: venv
	scripts/cluster up

# Debian's Chromium for the Playwright browser tests (Playwright's own browser download is never used)
# and docker-compose, which validates docker-compose.yml offline.
test-tools:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v docker-compose >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
	scripts/promtool build

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# kwok nodes hold 110 pods each: the 2,000-pod benchmark needs about 20 of them.
bench-snapshot: venv services
	DRIFTWATCH_NODES=25 scripts/cluster up
	$(VENV)/bin/python bench/snapshot.py

# One /metrics scrape at 2,000 pods: its time and SQL queries.
bench-metrics: venv services
	DRIFTWATCH_NODES=25 scripts/cluster up
	$(VENV)/bin/python bench/metrics.py

# The side-by-side diff on nginx-style files of 500 to 4,000 lines; needs no services.
bench-diff: venv
	$(VENV)/bin/python bench/diff.py

clean-cluster:
	scripts/cluster down
