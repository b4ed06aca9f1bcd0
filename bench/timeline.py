"""Benchmark (not a test): a namespace's timeline (drift.timeline) at 5,000 pods: its page, its JSON export and
the chart's replay, median and min-max of several runs, and the SQL queries each takes.

Facts are written straight to a throwaway database (test_dw_timeline_bench, dropped at the end) as
bench/overview.py writes them (N pods in N/10 Deployments over 10 namespaces, 3 consumptions per pod, one
ConfigMap in ten changed an hour ago), plus an incident's history: as many pods again that a rollout replaced 90
minutes ago (deleted, their containers ended with OOMKilled), and two verdict changes per consumption (stale 60
minutes ago, fresh 30 minutes ago). The timeline is one namespace's (a tenth of the pods) over the last 3 hours.

Run with .venv/bin/python bench/timeline.py [--pods 5000] [--repeat 7]."""

from __future__ import annotations

import json
import os
import secrets
import sys
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("HTTPS", "false")


def main() -> None:
    from pointintime import bench_main

    bench_main(__doc__.splitlines()[0], "dw_timeline_bench", run)


def run(pods: int, repeat: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.utils import timezone
    from overview import grow  # bench/overview.py: the same facts as the overview's benchmark
    from pointintime import timed

    from drift import timeline
    from drift.models import Cluster, Consumption, ContainerInstance, Membership, Pod, VerdictChange

    cluster = Cluster.objects.create(name="bench", kubeconfig_path="/nonexistent")
    grow(cluster, 0, pods)
    now = timezone.now()
    replaced = [
        Pod(cluster=cluster, workload_id=pod.workload_id, namespace=pod.namespace, name=f"{pod.name}-old",
            uid=str(uuid.uuid4()), node_name=pod.node_name, started_at=now - timedelta(hours=4),
            first_seen=now - timedelta(hours=4), deleted_at=now - timedelta(minutes=90))
        for pod in Pod.objects.filter(cluster=cluster)
    ]  # fmt: skip
    Pod.objects.bulk_create(replaced, batch_size=2000)
    ContainerInstance.objects.bulk_create(
        [ContainerInstance(pod=pod, name="app", container_id=f"{pod.uid}/app", started_at=pod.started_at,
                           ended_at=pod.deleted_at, finished_at=pod.deleted_at, termination_reason="OOMKilled",
                           exit_code=137, restart_count=3) for pod in replaced],
        batch_size=2000,
    )  # fmt: skip
    changes = []
    for consumption in Consumption.objects.select_related("container__pod").filter(container__pod__deleted_at=None):
        pod = consumption.container.pod
        for minutes, old, new in ((60, "fresh", "stale"), (30, "stale", "fresh")):
            changes.append(
                VerdictChange(cluster=cluster, namespace=pod.namespace, workload_id=pod.workload_id, pod=pod,
                              consumption=consumption, old_verdict=old, new_verdict=new,
                              at=now - timedelta(minutes=minutes))
            )  # fmt: skip
    VerdictChange.objects.bulk_create(changes, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does soon after such a load: plans as on a live database
    viewer = get_user_model().objects.create_user("viewer")
    Membership.objects.create(user=viewer, role="viewer", namespaces=[])
    client = Client()
    client.force_login(viewer)
    since = timezone.localtime(now - timedelta(hours=3)).isoformat(timespec="seconds").replace("+", "%2B")
    address = f"/clusters/bench/bench-0/timeline/?from={since}"
    scope = timeline.Scope(cluster, "bench-0")
    filters = timeline.Filters(now - timedelta(hours=3), now)

    def page() -> int:
        response = client.get(address)
        assert response.status_code == 200, response.status_code
        return len(response.content)

    def export() -> int:
        response = client.get(f"{address}&format=json")
        assert response.status_code == 200, response.status_code
        return len(json.loads(response.content)["entries"])

    def chart() -> int:
        return len(timeline.stale_pods(scope, filters).points)

    return {"pods": pods, "replaced_pods": len(replaced), "verdict_changes": len(changes),
            "namespace_pods": Pod.objects.filter(namespace="bench-0").count(),
            "timeline_page": timed(page, repeat), "json_export": timed(export, repeat),
            "stale_chart": timed(chart, repeat)}  # fmt: skip


if __name__ == "__main__":
    main()
