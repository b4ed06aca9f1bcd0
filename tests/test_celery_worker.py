"""Tasks travel through the real Redis broker to a real worker process, which writes to Postgres; snapshot
tasks do not pile up (they expire, re-check that their cluster is due, and never overlap), locks are kept
alive while their holder works, and no result is stored."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from dashboard.celery import app
from drift.clusters import register_cluster
from drift.models import Cluster, SnapshotRun
from drift.tasks import (
    check_cluster_connection,
    enqueue_due_snapshots,
    kept_alive,
    snapshot_cluster,
    task_lock,
    track_rollouts,
)
from tests.faultproxy import FaultProxy
from tests.kube_helpers import deployment, wait_until

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def worker_caught_up(cluster: Cluster) -> None:
    """The worker runs one task at a time, in order: once a marker task sent last has run, so has every task
    sent before it."""
    Cluster.objects.filter(pk=cluster.pk).update(server_version="")
    check_cluster_connection.delay(cluster.pk)
    wait_until(lambda: Cluster.objects.get(pk=cluster.pk).server_version, timeout=120, what="the marker task")


def test_a_task_runs_in_a_worker_and_writes_to_postgres(kubeconfig, celery_worker_process, celery_queue):
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))
    assert cluster.server_version == ""

    result = check_cluster_connection.apply_async(args=[cluster.pk], queue=celery_queue)
    wait_until(lambda: Cluster.objects.get(pk=cluster.pk).server_version, timeout=60, what="the task")

    cluster.refresh_from_db()
    assert cluster.server_version.startswith("v1.34")
    assert cluster.last_contact_at is not None
    assert celery_worker_process.poll() is None
    time.sleep(1)
    assert redis.Redis.from_url(settings.REDIS_URL).get(f"celery-task-meta-{result.id}") is None, "no result stored"


def test_a_snapshot_task_not_started_in_time_expires(kubeconfig, celery_queue, request):
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), snapshot_interval_seconds=5)
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = celery_queue
    try:
        assert enqueue_due_snapshots() == [cluster.pk]  # no worker yet: the task waits in the queue
    finally:
        app.conf.task_default_queue = default_queue
    time.sleep(6)
    request.getfixturevalue("celery_worker_process")
    worker_caught_up(cluster)
    assert not cluster.runs.exists(), "beat's task expired after the cluster's interval"


def test_a_queued_snapshot_task_rechecks_that_its_cluster_is_due(kubeconfig, celery_worker_process):
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), snapshot_interval_seconds=3600)
    snapshot_cluster.delay(cluster.pk)  # an explicit one (after a rollout) runs whenever it comes
    worker_caught_up(cluster)
    assert cluster.runs.count() == 1
    snapshot_cluster.delay(cluster.pk, only_if_due=True)  # beat's, sent before that run: not due any more
    worker_caught_up(cluster)
    assert cluster.runs.count() == 1


def test_a_snapshot_never_overlaps_another_of_its_cluster(kubeconfig, celery_worker_process):
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))
    held = task_lock(f"snapshot:{cluster.pk}")
    assert held.acquire()
    snapshot_cluster.delay(cluster.pk)
    worker_caught_up(cluster)
    assert not cluster.runs.exists(), "skipped while another cycle holds the lock"
    held.release()
    snapshot_cluster.delay(cluster.pk)
    worker_caught_up(cluster)
    assert list(cluster.runs.values_list("status", flat=True)) == [SnapshotRun.Status.SUCCEEDED]


def test_a_run_abandoned_by_a_killed_worker_ends_failed(kubeconfig, celery_worker_process):
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))
    abandoned = SnapshotRun.objects.create(cluster=cluster, started_at=timezone.now() - timedelta(hours=1))
    snapshot_cluster.delay(cluster.pk)
    worker_caught_up(cluster)
    abandoned.refresh_from_db()
    assert abandoned.status == SnapshotRun.Status.FAILED
    assert abandoned.error.startswith("abandoned")
    assert abandoned.finished_at is not None
    assert not cluster.runs.filter(status=SnapshotRun.Status.RUNNING).exists()


def test_a_lock_is_kept_alive_while_its_holder_works_and_expires_when_it_dies():
    lock = task_lock("test-keep-alive", timeout=1)
    assert lock.acquire()
    with kept_alive(lock, every=0.2):
        time.sleep(2.5)
        assert lock.owned(), "extended past its one-second timeout"
    time.sleep(1.5)
    assert not lock.owned(), "without its keeper, the lock expires"


def test_track_rollouts_never_overlaps_itself():
    held = task_lock("track-rollouts")
    assert held.acquire()
    try:
        assert track_rollouts() == {"skipped": 1}
    finally:
        held.release()
    assert "skipped" not in track_rollouts()


def test_tasks_have_time_limits():
    for task in (snapshot_cluster, track_rollouts):
        assert 0 < task.soft_time_limit < task.time_limit


@pytest.fixture
def prefork_worker(transactional_db, celery_queue, tmp_path):
    """A worker with the production pool (prefork): time limits need it; the shared fixture runs `solo`."""
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/"
        f"{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    log_path = ROOT / "artifacts" / f"celery-worker-{celery_queue}-prefork.log"
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-Q", celery_queue, "--pool", "prefork",
             "--concurrency", "1", "--loglevel", "INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    default_queue = app.conf.task_default_queue
    try:
        wait_until(lambda: b"ready." in log_path.read_bytes() or worker.poll() is not None, timeout=60, what="worker")
        assert worker.poll() is None, log_path.read_text()[-3000:]
        app.conf.task_default_queue = celery_queue
        yield worker
    finally:
        app.conf.task_default_queue = default_queue
        worker.terminate()
        worker.wait(timeout=30)


def test_a_snapshot_past_its_soft_time_limit_ends_failed_in_a_real_worker(kubeconfig, kube, prefork_worker, tmp_path):
    """An exec that hangs longer than the task may run: the soft limit stops the cycle, which records its
    run as failed with the reason, instead of holding the worker (and the cluster's lock) until the hard one."""
    proxy = FaultProxy(kubeconfig, tmp_path).start()
    try:
        kube.config_map("env-config", {"log_level": "INFO"})
        container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
        kube.create_deployment(deployment("env-demo", [container]))
        kube.wait_deployment_ready("env-demo")
        cluster, _ = register_cluster("local", kubeconfig_path=str(proxy.kubeconfig_path()))
        Cluster.objects.filter(pk=cluster.pk).update(exec_timeout_seconds=120)
        proxy.stall_exec = True

        snapshot_cluster.apply_async(args=(cluster.pk,), soft_time_limit=3, time_limit=60)
        run = wait_until(
            lambda: cluster.runs.exclude(status=SnapshotRun.Status.RUNNING).first(), timeout=50, what="the run's end"
        )
        assert run.status == SnapshotRun.Status.FAILED
        assert run.error.startswith("SoftTimeLimitExceeded while probing"), run.error
        assert (run.finished_at - run.started_at).total_seconds() < 30
        # The run's end is saved before its verdicts are judged (they rest on it); the lock goes right after,
        # long before the hard limit (60 s here).
        wait_until(lambda: task_lock(f"snapshot:{cluster.pk}").acquire(), timeout=15, what="the lock released")
    finally:
        proxy.stop()
