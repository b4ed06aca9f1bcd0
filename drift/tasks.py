"""Celery tasks: thin wrappers that take primary keys and call domain functions.

Nothing piles up: beat's snapshot tasks expire when no worker started them within the cluster's interval and
check again that the cluster is due when they start; each task has soft and hard time limits; a Redis lock
keeps two snapshots of one cluster, or two `track_rollouts`, from overlapping, and is extended while its
holder works, so that it can be short and a dead worker's lock soon expires. No task result is stored
(CELERY_TASK_IGNORE_RESULT): return values are for logs and tests calling the functions directly."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import redis
from celery import shared_task
from django.conf import settings
from django.utils import timezone
from redis.exceptions import LockError
from redis.lock import Lock

from drift.audit_webhook import prune_kube_audit_events
from drift.clusters import check_cluster
from drift.models import Cluster, SnapshotRun
from drift.rollout import follow_rollouts
from drift.snapshot import snapshot
from drift.snapshot.retention import prune_versions as prune_old_versions
from drift.snapshot.watch import HEARTBEAT_EVERY_SECONDS

log = logging.getLogger(__name__)

# A lock lives this long unless its holder extends it (every third of it): a dead worker blocks a cluster
# for at most this long.
LOCK_SECONDS = 60
# A snapshot that outlives the soft limit is stopped and recorded as failed; the hard limit kills it.
SNAPSHOT_SOFT_TIME_LIMIT = 300
SNAPSHOT_TIME_LIMIT = SNAPSHOT_SOFT_TIME_LIMIT + 30
TRACK_ROLLOUTS_SOFT_TIME_LIMIT = 120
TRACK_ROLLOUTS_TIME_LIMIT = TRACK_ROLLOUTS_SOFT_TIME_LIMIT + 30


def task_lock(name: str, timeout: int = LOCK_SECONDS) -> Lock:
    """A Redis lock scoped by database: installations (or test sessions) sharing one Redis have their own.
    Not thread-local, so the thread that keeps it alive may extend it."""
    database = settings.DATABASES["default"]["NAME"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    return client.lock(f"driftwatch:{database}:{name}", timeout=timeout, blocking=False, thread_local=False)


@contextmanager
def kept_alive(lock: Lock, every: float | None = None) -> Iterator[None]:
    """Extend the lock to its full timeout every third of it while the block runs."""
    interval = every if every is not None else (lock.timeout or LOCK_SECONDS) / 3
    stop = threading.Event()

    def extend() -> None:
        while not stop.wait(interval):
            try:
                lock.reacquire()
            except LockError:
                log.warning("lock %s was lost while its holder worked", lock.name)
                return

    keeper = threading.Thread(target=extend, name="driftwatch-lock-keeper", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()


def _release(lock: Lock) -> None:
    try:
        lock.release()
    except LockError:
        log.warning("lock %s had expired before its holder released it", lock.name)


@shared_task
def check_cluster_connection(cluster_id: int) -> str:
    return check_cluster(Cluster.objects.get(pk=cluster_id))


# The watcher heartbeats every HEARTBEAT_EVERY_SECONDS while all its watches of the cluster are connected: silent
# for longer than this (several beats missed), it is taken as not following the cluster, and snapshots return to
# their own interval.
PODS_WATCHED_WITHIN_SECONDS = 9 * HEARTBEAT_EVERY_SECONDS


def is_due(cluster: Cluster, now: datetime) -> bool:
    started = cluster.runs.order_by("-started_at").values_list("started_at", flat=True).first()
    return started is None or now - started >= timedelta(seconds=snapshot_period(cluster, now))


def snapshot_period(cluster: Cluster, now: datetime) -> int:
    """Seconds between full snapshots: the snapshot interval, or, while the watcher follows the cluster's pods
    (drift.snapshot.podwatch), the reconcile interval, when longer."""
    heartbeat = cluster.watch_heartbeat_at
    watched = heartbeat is not None and now - heartbeat <= timedelta(seconds=PODS_WATCHED_WITHIN_SECONDS)
    if watched:
        return max(cluster.snapshot_interval_seconds, cluster.reconcile_interval_seconds)
    return cluster.snapshot_interval_seconds


@shared_task(soft_time_limit=SNAPSHOT_SOFT_TIME_LIMIT, time_limit=SNAPSHOT_TIME_LIMIT)
def snapshot_cluster(cluster_id: int, only_if_due: bool = False) -> str:
    """One cycle; a Redis lock keeps two cycles of one cluster from overlapping. Beat's tasks pass
    `only_if_due`: a task that waited in the queue while another cycle ran has nothing left to do."""
    lock = task_lock(f"snapshot:{cluster_id}")
    if not lock.acquire():
        return "skipped: a snapshot of this cluster is running"
    try:
        cluster = Cluster.objects.filter(pk=cluster_id).first()
        if cluster is None:
            return "skipped: cluster removed"
        if only_if_due and not is_due(cluster, timezone.now()):
            return "skipped: not due"
        end_abandoned_runs(cluster)
        with kept_alive(lock):
            status = snapshot(cluster).status
    finally:
        _release(lock)
    _after_snapshot(cluster_id)
    return status


def _after_snapshot(cluster_id: int) -> None:
    """Notifications are judged in a task of their own: nothing they do may delay or fail a snapshot."""
    try:
        evaluate_notifications.delay(cluster_id)
    except Exception as error:  # the broker is down: the next snapshot asks again
        log.warning("notifications of cluster %s not evaluated: %s", cluster_id, type(error).__name__)


def end_abandoned_runs(cluster: Cluster) -> int:
    """Runs left `running` by a worker that was killed (hard time limit, crash, power loss) end `failed`.
    Only runs older than the hard limit: no worker can still be running them."""
    cutoff = timezone.now() - timedelta(seconds=SNAPSHOT_TIME_LIMIT)
    return cluster.runs.filter(status=SnapshotRun.Status.RUNNING, started_at__lt=cutoff).update(
        status=SnapshotRun.Status.FAILED,
        finished_at=timezone.now(),
        error="abandoned: the worker running it stopped (hard time limit, crash or restart)",
    )


@shared_task
def enqueue_due_snapshots() -> list[int]:
    """Beat ticks every few seconds; each cluster is due after its own interval since its last run. A task
    not started within that interval expires: the next tick sends a fresh one."""
    now = timezone.now()
    due = []
    for cluster in Cluster.objects.all():
        if is_due(cluster, now):
            due.append(cluster.pk)
            snapshot_cluster.apply_async(
                args=(cluster.pk,), kwargs={"only_if_due": True}, expires=max(cluster.snapshot_interval_seconds, 5)
            )
    return due


@shared_task(soft_time_limit=TRACK_ROLLOUTS_SOFT_TIME_LIMIT, time_limit=TRACK_ROLLOUTS_TIME_LIMIT)
def track_rollouts() -> dict[str, int]:
    """Follow rollouts in progress to their end and start the next group of each bulk rollout; one at a time
    (beat ticks every few seconds and one pass may take longer)."""
    lock = task_lock("track-rollouts")
    if not lock.acquire():
        return {"skipped": 1}
    try:
        with kept_alive(lock):
            return follow_rollouts()
    finally:
        _release(lock)


@shared_task
def prune_versions() -> int:
    """Hourly: source versions older than DRIFTWATCH_VERSION_RETENTION_DAYS that nothing may still run."""
    return prune_old_versions(settings.DRIFTWATCH_VERSION_RETENTION_DAYS)


@shared_task
def evaluate_notifications(cluster_id: int) -> list[int]:
    """After each snapshot: judge the notification rules of the cluster and send what is due, each notice in a
    task of its own (a slow or failing webhook delays nobody else)."""
    from drift.notify.evaluate import evaluate_cluster

    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return []
    notices = evaluate_cluster(cluster)
    for notice_id in notices:
        send_notice.delay(notice_id)
    return notices


# A failed delivery is tried again after backoff, 2 x backoff, 4 x backoff ..., then marked failed.
NOTIFY_MAX_RETRIES = 4


@shared_task(bind=True, max_retries=NOTIFY_MAX_RETRIES)
def send_notice(self: Any, notice_id: int) -> str:
    from drift.notify.send import send

    outcome = send(notice_id, final=self.request.retries >= NOTIFY_MAX_RETRIES)
    if outcome == "retry":
        raise self.retry(countdown=settings.DRIFTWATCH_NOTIFY_BACKOFF_SECONDS * 2**self.request.retries)
    return outcome


@shared_task
def prune_audit_events() -> int:
    """Hourly: stored API-server audit events and refusal counters older than DRIFTWATCH_AUDIT_EVENT_RETENTION_DAYS
    (an event joined to a version still kept stays with it)."""
    return prune_kube_audit_events(settings.DRIFTWATCH_AUDIT_EVENT_RETENTION_DAYS)
