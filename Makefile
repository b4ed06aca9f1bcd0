# The two commands: `make demo` runs the product against the local cluster, `make test` runs every test.
# Each step installs what is missing and skips what is already there.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.requirements-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)

.PHONY: demo test test-teardown test-install install-local uninstall-local venv services cluster test-tools lint check bench bench-snapshot bench-overview bench-load bench-workers bench-metrics bench-diff bench-pointintime bench-scale bench-podwatch chaos clean-cluster

demo: venv
	scripts/demo

test: venv services cluster test-tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest
	$(MAKE) test-install
	$(MAKE) test-teardown

# The chart installed on the local cluster's real node, for real (scripts/install-local), then checked from
# outside; skipped with the reason when the machine's real node runs for another checkout's cluster.
test-install: venv services cluster
	$(VENV)/bin/pytest -m install tests/test_install_local.py
	scripts/install-local uninstall

# Build the image, install the chart into namespace driftwatch on the local cluster (pods on the real node),
# register that cluster with the chart's service account, and wait for the first in-cluster snapshot.
install-local: venv services
	scripts/install-local

uninstall-local: venv
	scripts/install-local uninstall

# Takes the local cluster down and checks that the real node left nothing behind: run after the rest
# (pyproject's addopts leave `teardown` tests out of the main run).
test-teardown: venv services
	$(VENV)/bin/pytest -m teardown tests/test_real_node_down.py

venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.requirements-* && touch $@

services:
	scripts/services up

cluster: venv
	scripts/cluster up

# Debian's Chromium for the Playwright browser tests (Playwright's own browser download is never used)
# and docker-compose, which validates docker-compose.yml offline and brings it up on the tests' own engine
# (scripts/docker); Helm (scripts/helm).
test-tools:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v docker-compose >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
	@# Helm for the chart tests, built once from the Go module proxy (before pytest's per-test timeout applies).
	scripts/helm build
	@# Dex, the OpenID Connect provider of the single sign-on tests: built once, before pytest's per-test timeout.
	scripts/dex build
	@# promtool (Prometheus) for `promtool check rules` on deploy/monitoring, built once the same way.
	scripts/promtool build
	@# The Argo Rollouts controller and its CRDs for the Rollout kind's tests (tests/test_rollout_argo.py), built once.
	scripts/argo-rollouts build
	@# Debian's docker.io, and the app, PostgreSQL and Redis images its engine loads for the compose test (no registry).
	scripts/docker images >/dev/null

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Every benchmark of issues 11 and 19, then its table of goals with this machine's numbers (bench/table.py). About
# 80 minutes on 2 cores, most of it the two soaks (45 minutes), creating 5,000 simulated pods and the load tests.
BENCH_OUT := artifacts/bench
bench: venv services
	rm -rf $(BENCH_OUT)
	DRIFTWATCH_NODES=50 scripts/cluster up
	$(VENV)/bin/python bench/snapshot.py --deployments 500 --replicas 10 --config-maps 500 --repeat 5 --keep --out $(BENCH_OUT)/snapshot.json
	$(VENV)/bin/python bench/workers.py --clusters 4 --repeat 3 --out $(BENCH_OUT)/workers.json
	@# Ten registrations of those 5,000 pods (50,000): the worker's first cycles, its 15-minute soak of back-to-back
	@# cycles, then the watcher's 30-minute soak, with a ConfigMap edit every 10 s and a restart every 5 minutes.
	$(VENV)/bin/python bench/scale.py --part processes --clusters 10 --soak-minutes 30 --worker-soak-minutes 15 --churn --out $(BENCH_OUT)/scale.json
	@# Issue 19, watch what is judged: on the same 5,000 pods (idle minute, pod started/replaced, ConfigMap edit).
	$(VENV)/bin/python bench/podwatch.py --repeat 4 --out $(BENCH_OUT)/podwatch.json
	@# Gone before the overview and load benchmarks start: deleting 5,000 pods keeps the API server busy for minutes,
	@# and with --wait=false it shared the 2 cores with them (overview 251 ms instead of 70 ms).
	scripts/cluster kubectl delete namespace $(addprefix bench-,0 1 2 3 4 5 6 7 8 9) --timeout=20m
	$(VENV)/bin/python bench/overview.py --pods 500 5000 --repeat 20 --keepdb --out $(BENCH_OUT)/overview.json
	$(VENV)/bin/python bench/load.py --users 50 --minutes 5 --out $(BENCH_OUT)/load.json
	$(VENV)/bin/python bench/pointintime.py --pods 5000 --repeat 7 --out $(BENCH_OUT)/pointintime.json
	$(VENV)/bin/python bench/scale.py --part read --clusters 10 --repeat 20 --keepdb --out $(BENCH_OUT)/scale-read.json
	$(VENV)/bin/python bench/load.py --database test_driftwatch_bench_scale --users 100 --minutes 5 --out $(BENCH_OUT)/scale-load.json
	$(VENV)/bin/python bench/table.py

# kwok nodes hold 110 pods each: the 2,000-pod benchmark needs about 20 of them, 5,000 pods about 50.
bench-snapshot: venv services
	DRIFTWATCH_NODES=25 scripts/cluster up
	$(VENV)/bin/python bench/snapshot.py

# The overview at 500 and 5,000 pods (facts written to a database of its own; no cluster needed).
bench-overview: venv services
	$(VENV)/bin/python bench/overview.py --pods 500 5000 --repeat 20

bench-load: venv services
	$(VENV)/bin/python bench/overview.py --pods 5000 --repeat 3 --keepdb
	$(VENV)/bin/python bench/load.py

bench-podwatch: venv services
	DRIFTWATCH_NODES=50 scripts/cluster up
	$(VENV)/bin/python bench/podwatch.py

bench-workers: venv services
	$(VENV)/bin/python bench/workers.py

# Ten clusters, 50,000 pods: the overview, /metrics and 100 Locust users on stored facts (no cluster needed).
bench-scale: venv services
	$(VENV)/bin/python bench/scale.py --part read --keepdb
	$(VENV)/bin/python bench/load.py --database test_driftwatch_bench_scale --users 100 --minutes 2

# One /metrics scrape at 2,000 pods: its time and SQL queries.
bench-metrics: venv services
	DRIFTWATCH_NODES=25 scripts/cluster up
	$(VENV)/bin/python bench/metrics.py

# Point in time at 5,000 pods (and as many replaced ones): its time and SQL queries; needs PostgreSQL only.
bench-pointintime: venv services
	$(VENV)/bin/python bench/pointintime.py

# The side-by-side diff on nginx-style files of 500 to 4,000 lines; needs no services.
bench-diff: venv
	$(VENV)/bin/python bench/diff.py

# Faults one at a time (workers, API server, PostgreSQL, Redis, watcher) under load, on a stack of its own
# (bench/chaos.py: its own PostgreSQL, Redis and kwok control plane; the shared ones are never touched), and the
# table of what each cost. About 10 minutes on 2 cores; root (PostgreSQL runs as the postgres user).
chaos: venv
	$(VENV)/bin/python bench/chaos.py --out artifacts/chaos.json

clean-cluster:
	scripts/cluster down
