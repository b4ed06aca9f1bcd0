"""Benchmark (not a test): point in time (drift.verdicts.read_at.point_in_time and the overview's ?at= page) at
5,000 pods: median and min-max of several runs, and the SQL queries each takes.

Facts are written straight to a throwaway database (test_driftwatch_bench_pointintime, dropped at the end) as
bench/overview.py writes them (N pods in N/10 Deployments over 10 namespaces, 3 consumptions per pod, one
ConfigMap in ten changed an hour ago), plus what an incident's history adds: as many pods again that a rollout
replaced 90 minutes ago (deleted, their containers ended), and a good snapshot every 30 s for the last three
hours. T is 30 minutes ago.

Run with `make bench-pointintime` or .venv/bin/python bench/pointintime.py [--pods 5000] [--repeat 7]."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("HTTPS", "false")


def main() -> None:
    bench_main(__doc__.splitlines()[0], "driftwatch_bench_pointintime", run)


def bench_main(description: str, database: str, run: Callable[[int, int], dict]) -> None:
    """The command line of a bench that seeds `--pods` pods into a throwaway database of its own (created, then
    dropped) and times `run(pods, repeat)`; prints its results as JSON (and writes them to `--out`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    settings.DATABASES["default"]["NAME"] = database
    connection.settings_dict["NAME"] = database
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        results = run(args.pods, args.repeat)
    finally:
        connection.creation.destroy_test_db(test_name, verbosity=0)
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results))


def timed(call, repeat: int) -> dict:
    from django.db import connection

    call()  # warm-up
    times, cpu, counted = [], [], []

    def count(execute, sql, *rest):
        counted.append(sql)
        return execute(sql, *rest)

    for _ in range(repeat):
        counted.clear()
        with connection.execute_wrapper(count):
            started, started_cpu = time.perf_counter(), time.process_time()
            result = call()
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
    queries = len(counted)
    # This process's CPU time beside the wall time: on shared cores the wall time is mostly waiting for a core.
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "cpu_median_s": statistics.median(cpu), "cpu_min_s": min(cpu), "cpu_max_s": max(cpu), "queries": queries,
            "runs": repeat, "result": result}  # fmt: skip


def run(pods: int, repeat: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone
    from overview import grow  # bench/overview.py: the same facts as the overview's benchmark

    from drift.models import Cluster, ContainerInstance, Membership, Pod, SnapshotRun
    from drift.verdicts.read_at import point_in_time

    cluster = Cluster.objects.create(name="bench", kubeconfig_path="/nonexistent")
    grow(cluster, 0, pods)
    now = timezone.now()
    # The pods a rollout replaced 90 minutes ago: copies of the live ones, deleted then.
    replaced = [
        Pod(cluster=cluster, workload_id=pod.workload_id, namespace=pod.namespace, name=f"{pod.name}-old",
            uid=str(uuid.uuid4()), node_name=pod.node_name, started_at=now - timedelta(hours=4),
            first_seen=now - timedelta(hours=4), deleted_at=now - timedelta(minutes=90))
        for pod in Pod.objects.filter(cluster=cluster)
    ]  # fmt: skip
    Pod.objects.bulk_create(replaced, batch_size=2000)
    ContainerInstance.objects.bulk_create(
        [ContainerInstance(pod=pod, name="app", container_id=f"{pod.uid}/app", started_at=pod.started_at,
                           ended_at=pod.deleted_at) for pod in replaced],
        batch_size=2000,
    )  # fmt: skip
    SnapshotRun.objects.bulk_create(
        [SnapshotRun(cluster=cluster, status="succeeded", started_at=now - timedelta(seconds=seconds),
                     finished_at=now - timedelta(seconds=seconds - 5)) for seconds in range(3 * 3600, 0, -30)]
    )  # fmt: skip
    at = now - timedelta(minutes=30)
    viewer = get_user_model().objects.create_user("viewer")
    Membership.objects.create(user=viewer, role="viewer", namespaces=[])
    client = Client()
    client.force_login(viewer)
    query = f"/?at={timezone.localtime(at).isoformat(timespec='seconds').replace('+', '%2B')}"

    def answer() -> int:
        return len(point_in_time(cluster, at, now=now).rows)

    def page() -> int:
        response = client.get(query)
        assert response.status_code == 200, response.status_code
        return len(response.content)

    return {"pods": pods, "replaced_pods": len(replaced), "point_in_time": timed(answer, repeat),
            "overview_at_page": timed(page, repeat)}  # fmt: skip


if __name__ == "__main__":
    main()
