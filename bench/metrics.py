"""Benchmark (not a test): what one `/metrics` scrape costs at 2,000 pods.

The scenario of bench/snapshot.py (2,000 simulated pods in 200 Deployments reading 300 ConfigMaps): a first
cycle records them, a third of the ConfigMaps is edited and a second cycle sees the env consumers go stale;
then it scrapes several times and prints the time of a scrape (median, max), the SQL queries one scrape
makes, its size and its number of series.

Run with `make bench-metrics`, or: DRIFTWATCH_NODES=25 scripts/cluster up && .venv/bin/python bench/metrics.py
It uses the database of bench/snapshot.py and deletes its namespaces at the end unless --keep is given."""

from __future__ import annotations

import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# The scenario of bench/snapshot.py (loading it also sets the environment before Django starts).
sys.path.insert(0, str(Path(__file__).resolve().parent))
scenario: Any = importlib.import_module("snapshot")


def main() -> None:
    args = scenario.scenario_parser(__doc__.splitlines()[0], repeat=10).parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    scenario.ensure_database()
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    from dashboard.metrics import scrape
    from drift.models import Cluster
    from drift.snapshot import snapshot

    kubeconfig = scenario.ROOT / ".cluster" / "kubeconfig"
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    pods_wanted = args.deployments * args.replicas
    scenario.create_workloads(api, args)
    scenario.wait_for_pods(api, pods_wanted)
    Cluster.objects.filter(name="bench").delete()
    cluster = Cluster.objects.create(
        name="bench", kubeconfig_path=str(kubeconfig), api_requests_per_second=1000, exec_concurrency=16
    )
    try:
        started = time.monotonic()
        run = snapshot(cluster)
        print(f"first cycle: {run.status} in {time.monotonic() - started:.0f}s")
        core = k8s.CoreV1Api(api)
        for index in range(0, args.config_maps, 3):
            namespace = f"{scenario.NAMESPACE_PREFIX}{index % args.namespaces}"
            name = f"config-{index // args.namespaces}"
            core.patch_namespaced_config_map(name, namespace, {"data": {"log_level": "DEBUG"}})
        run = snapshot(cluster)
        print(
            f"cycle after editing {len(range(0, args.config_maps, 3))} ConfigMaps: {run.status}, {run.verdict_counts}"
        )
        seconds, queries, body = [], 0, b""
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                body = scrape()
                seconds.append(time.perf_counter() - started)
            queries = len(captured.captured_queries)
        series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
        print(f"/metrics at {pods_wanted} pods: median {statistics.median(seconds) * 1000:.0f} ms, "
              f"max {max(seconds) * 1000:.0f} ms over {args.repeat} scrapes; {queries} SQL queries per scrape; "
              f"{len(body):,} bytes, {series} series")  # fmt: skip
    finally:
        Cluster.objects.filter(pk=cluster.pk).delete()
        if not args.keep:
            scenario.delete_workloads(api, args)


if __name__ == "__main__":
    main()
