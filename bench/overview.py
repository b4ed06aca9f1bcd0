"""Benchmark (not a test): the overview's server time, queries and HTML size at 500 and at 5,000 pods, in one run.

Facts are written straight to a throwaway database (test_driftwatch_bench_overview, dropped at the end), as
a snapshot records them: N pods in N/10 Deployments over 10 namespaces, each pod reading a ConfigMap
through envFrom, another as a volume, and kube-root-ca.crt (3 consumptions per pod, as the issue's cluster).
One Deployment in ten started before its ConfigMap changed (stale); the rest are fresh. The verdicts are
stored (drift.verdicts.store, as a snapshot's end does), then the overview is requested through Django's handler
(`--repeat` times, after one warm-up): server time median / p95 with min-max, queries, HTML bytes. It also
times a `/metrics` scrape (median, min-max, queries) and `driftreport --json` at each size. The machine's
noise is large (2 shared cores): compare the ratio 5,000 / 500 taken in the same run.

Run with `make bench-overview` or .venv/bin/python bench/overview.py [--pods 500 5000] [--repeat 20]."""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("HTTPS", "false")

NAMESPACES = 10
PODS_PER_DEPLOYMENT = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file (for bench/table.py)")
    parser.add_argument("--profile", action="store_true", help="print where the largest size's time goes")
    parser.add_argument("--keepdb", action="store_true", help="keep the database (and its pods) for bench/load.py")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    settings.DATABASES["default"]["NAME"] = "driftwatch_bench_overview"
    connection.settings_dict["NAME"] = "driftwatch_bench_overview"
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        results = run(args.pods, args.repeat, args.profile)
    finally:
        if not args.keepdb:
            connection.creation.destroy_test_db(test_name, verbosity=0)
    print_table(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results))


def run(sizes: list[int], repeat: int, profile: bool = False) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from drift import verdicts
    from drift.models import Cluster, Membership, SnapshotRun

    cluster, _ = Cluster.objects.get_or_create(name="bench", defaults={"kubeconfig_path": "/nonexistent"})
    viewer, created = get_user_model().objects.get_or_create(username="viewer")
    if created:
        Membership.objects.create(user=viewer, role="viewer", namespaces=[])
    client = Client()
    client.force_login(viewer)
    results: dict = {"sizes": {}}
    made = 0
    for pods in sorted(sizes):
        made = grow(cluster, made, pods)
        SnapshotRun.objects.create(cluster=cluster, status="succeeded", finished_at=cluster.created_at)
        started = time.perf_counter()
        verdicts.facts_changed(cluster)
        judge_seconds = time.perf_counter() - started
        results["sizes"][pods] = {"judge_s": judge_seconds, **measure(client, repeat)}
        results["sizes"][pods]["driftreport_s"] = time_driftreport()
    if profile:
        import cProfile
        import pstats

        for what, call in (("overview", lambda: client.get("/")), ("judge", lambda: verdicts.facts_changed(cluster)),
                           ("driftreport", time_driftreport)):  # fmt: skip
            profiler = cProfile.Profile()
            profiler.runcall(call)
            print(f"--- {what}")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return results


def measure(client, repeat: int) -> dict:
    from django.db import connection

    client.get("/")  # warm-up: templates compiled, connections open
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get("/")
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    queries: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get("/")
    stamp = response.content.decode().split("stamp=", 1)[1].split('"', 1)[0]
    polled = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get("/", {"stamp": stamp}, headers={"HX-Request": "true", "HX-Target": "overview-body"})
        polled.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 204, answer.status_code
    # One /metrics scrape, as Prometheus would take it (the gauges read the stored verdicts).
    scrapes = []
    for _ in range(repeat):
        started = time.perf_counter()
        scraped = client.get("/metrics")
        scrapes.append((time.perf_counter() - started) * 1000)
        assert scraped.status_code == 200, scraped.status_code
    scrape_queries: list[str] = []

    def count_scrape(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        scrape_queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_scrape):
        client.get("/metrics")
    return {
        "metrics_median_ms": statistics.median(scrapes),
        "metrics_min_ms": min(scrapes),
        "metrics_max_ms": max(scrapes),
        "metrics_queries": len(scrape_queries),
        "median_ms": statistics.median(times),
        "p95_ms": percentile(times, 95),
        "min_ms": min(times),
        "max_ms": max(times),
        "queries": len(queries),
        "html_bytes": len(response.content),
        "nothing_new_median_ms": statistics.median(polled),
    }


def time_driftreport() -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("driftreport", "--json", "--cluster", "bench", stdout=io.StringIO())
    return time.perf_counter() - started


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def grow(cluster, made: int, pods: int) -> int:
    """Add Deployments until the cluster has `pods` pods; returns the pods made."""
    from django.utils import timezone

    from drift.models import Consumption, ContainerInstance, Pod, Source, SourceVersion, Workload

    now = timezone.now()
    deployments = range(made // PODS_PER_DEPLOYMENT, pods // PODS_PER_DEPLOYMENT)
    sources = []
    for index in deployments:
        namespace = f"bench-{index % NAMESPACES}"
        for name in (f"env-{index}", f"vol-{index}", "kube-root-ca.crt"):
            if name == "kube-root-ca.crt" and index >= NAMESPACES:
                continue
            sources.append(
                Source(cluster=cluster, kind="ConfigMap", namespace=namespace, name=name, uid=str(uuid.uuid4()),
                       first_seen=now - timedelta(hours=3))
            )  # fmt: skip
    Source.objects.bulk_create(sources)
    versions = []
    for source in sources:
        versions.append(SourceVersion(source=source, content_hash="a" * 64, resource_version=str(source.pk * 2),
                                      first_seen=now - timedelta(hours=3), key_hashes={"level": "h1"}))  # fmt: skip
        if source.name.startswith("env-") and int(source.name[4:]) % 10 == 0:  # one in ten changed since
            versions.append(SourceVersion(source=source, content_hash="b" * 64, resource_version=str(source.pk * 2 + 1),
                                          first_seen=now - timedelta(hours=1), key_hashes={"level": "h2"}))  # fmt: skip
    SourceVersion.objects.bulk_create(versions)
    workloads = [
        Workload(cluster=cluster, kind="Deployment", namespace=f"bench-{i % NAMESPACES}", name=f"app-{i}",
                 first_seen=now - timedelta(hours=3))
        for i in deployments
    ]  # fmt: skip
    Workload.objects.bulk_create(workloads)
    pod_rows, containers, consumptions = [], [], []
    for workload, index in zip(workloads, deployments, strict=True):
        for replica in range(PODS_PER_DEPLOYMENT):
            started = now - timedelta(hours=2)
            pod_rows.append(Pod(cluster=cluster, workload=workload, namespace=workload.namespace,
                                name=f"app-{index}-{replica}", uid=str(uuid.uuid4()), node_name="kwok-node-0",
                                started_at=started, first_seen=started))  # fmt: skip
    Pod.objects.bulk_create(pod_rows, batch_size=2000)
    for pod in pod_rows:
        containers.append(ContainerInstance(pod=pod, name="app", container_id=f"{pod.uid}/app",
                                            started_at=pod.started_at, running=True))  # fmt: skip
    ContainerInstance.objects.bulk_create(containers, batch_size=2000)
    for container in containers:
        index = int(container.pod.name.split("-")[1])
        consumptions += [
            Consumption(container=container, source_kind="ConfigMap", source_name=f"env-{index}", mode="envFrom"),
            Consumption(container=container, source_kind="ConfigMap", source_name=f"vol-{index}", mode="volume",
                        mount_path="/etc/config"),
            Consumption(container=container, source_kind="ConfigMap", source_name="kube-root-ca.crt",
                        mode="projected", keys=["ca.crt"], mount_path="/var/run/secrets/kubernetes.io/serviceaccount"),
        ]  # fmt: skip
    Consumption.objects.bulk_create(consumptions, batch_size=5000)
    return pods


def print_table(results: dict) -> None:
    sizes = results["sizes"]
    small, large = min(sizes), max(sizes)
    print(f"{'pods':>6} {'median ms':>10} {'p95 ms':>8} {'min-max ms':>14} {'queries':>8} {'HTML KB':>8} "
          f"{'204 ms':>7} {'judge s':>8} {'driftreport s':>14}")  # fmt: skip
    for pods, r in sorted(sizes.items()):
        print(f"{pods:>6} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} {r['min_ms']:>6.1f}-{r['max_ms']:<7.1f} "
              f"{r['queries']:>8} {r['html_bytes'] / 1024:>8.1f} {r['nothing_new_median_ms']:>7.1f} "
              f"{r['judge_s']:>8.2f} {r['driftreport_s']:>14.2f}")  # fmt: skip
    ratio = sizes[large]["median_ms"] / sizes[small]["median_ms"]
    print(f"overview median at {large} pods / at {small} pods: {ratio:.2f}")
    print(f"{'pods':>6} {'/metrics median ms':>19} {'min-max ms':>14} {'queries':>8}")
    for pods, r in sorted(sizes.items()):
        print(f"{pods:>6} {r['metrics_median_ms']:>19.1f} {r['metrics_min_ms']:>6.1f}-{r['metrics_max_ms']:<7.1f} "
              f"{r['metrics_queries']:>8}")  # fmt: skip


if __name__ == "__main__":
    main()
