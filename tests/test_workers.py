"""Two real Celery workers on one queue: snapshot tasks of one cluster sent at once never overlap (the per-cluster
Redis lock turns the loser away), every cycle that ran succeeded, and the stored verdicts equal the fresh ones."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from dashboard.celery import app
from drift import verdicts
from drift.clusters import register_cluster
from drift.models import SnapshotRun
from drift.tasks import snapshot_cluster
from drift.verdicts import drift_rows
from tests.kube_helpers import deployment, wait_until

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

SKIPPED = b"skipped: a snapshot of this cluster is running"


@pytest.fixture
def two_workers(celery_queue: str) -> Iterator[list[Path]]:
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/"
        f"{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    queue = f"{celery_queue}-race"
    logs, workers = [], []
    for name in ("one", "two"):
        log_path = ROOT / "artifacts" / f"celery-worker-{queue}-{name}.log"
        log_path.parent.mkdir(exist_ok=True)
        log_path.write_bytes(b"")
        command = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-Q", queue, "--pool", "solo",
                   "-n", f"{name}-{queue}@%h", "--loglevel", "INFO", "--without-heartbeat", "--without-mingle",
                   "--without-gossip", "--prefetch-multiplier", "1"]  # fmt: skip
        with log_path.open("ab") as log:
            workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        logs.append(log_path)
    default_queue = app.conf.task_default_queue
    try:
        for log_path, worker in zip(logs, workers, strict=True):
            wait_until(lambda p=log_path, w=worker: b"ready." in p.read_bytes() or w.poll() is not None, timeout=90,
                       what="worker")  # fmt: skip
            assert worker.poll() is None, log_path.read_text()[-3000:]
        app.conf.task_default_queue = queue
        yield logs
    finally:
        app.conf.task_default_queue = default_queue
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        redis.Redis.from_url(settings.REDIS_URL).delete(queue)


def test_two_workers_racing_for_one_cluster_never_overlap(kubeconfig, kube, two_workers):
    kube.config_map("env-config", {"level": "info"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container], replicas=3))
    kube.wait_deployment_ready("env-demo")
    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    sent = 6
    for _ in range(sent):
        snapshot_cluster.delay(cluster.pk)

    def settled() -> bool:
        skipped = sum(log.read_bytes().count(SKIPPED) for log in two_workers)
        finished = cluster.runs.exclude(status=SnapshotRun.Status.RUNNING).count()
        # A run's record ends before its worker logs the task's end: wait for every task's line too.
        ended = sum(log.read_bytes().count(b"succeeded in") for log in two_workers)
        return (
            skipped + finished == sent
            and ended == sent
            and not cluster.runs.filter(status=SnapshotRun.Status.RUNNING).exists()
        )

    wait_until(settled, timeout=240, what="every task ran or was turned away")
    runs = list(cluster.runs.order_by("started_at"))
    assert {run.status for run in runs} == {SnapshotRun.Status.SUCCEEDED}
    assert sum(log.read_bytes().count(SKIPPED) for log in two_workers) >= 1, "the workers raced"
    assert all(log.read_bytes().count(b"succeeded in") for log in two_workers), "both workers took tasks"
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at <= later.started_at, "two cycles of one cluster overlapped"
    now = timezone.now()
    stored = sorted((r.consumption_id, r.verdict, r.running_version) for r in verdicts.rows(cluster, now=now))
    fresh = sorted((r.consumption_id, r.verdict, r.running_version) for r in drift_rows(cluster, now=now))
    assert stored == fresh and stored
