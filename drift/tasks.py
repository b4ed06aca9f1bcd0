"""Celery tasks: thin wrappers that take primary keys and call domain functions."""

from datetime import timedelta

import redis
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from drift.clusters import check_cluster
from drift.collect import snapshot
from drift.models import Cluster, SnapshotRun
from drift.rollout import follow_rollouts

# A snapshot that takes longer than this is assumed dead; its lock expires and the next one may start.
SNAPSHOT_LOCK_SECONDS = 600


@shared_task
def check_cluster_connection(cluster_id: int) -> str:
    return check_cluster(Cluster.objects.get(pk=cluster_id))


@shared_task
def snapshot_cluster(cluster_id: int) -> str:
    """One cycle; a Redis lock keeps two cycles of one cluster from overlapping."""
    # Scoped by database: installations (or test sessions) sharing one Redis have their own clusters.
    database = settings.DATABASES["default"]["NAME"]
    lock = redis.Redis.from_url(settings.REDIS_URL).lock(
        f"driftwatch:{database}:snapshot:{cluster_id}", timeout=SNAPSHOT_LOCK_SECONDS, blocking=False
    )
    if not lock.acquire():
        return "skipped: a snapshot of this cluster is running"
    try:
        cluster = Cluster.objects.filter(pk=cluster_id).first()
        if cluster is None:
            return "skipped: cluster removed"
        return snapshot(cluster).status
    finally:
        lock.release()


@shared_task
def enqueue_due_snapshots() -> list[int]:
    """Beat ticks every few seconds; each cluster is due after its own interval since its last run."""
    now = timezone.now()
    due = []
    for cluster in Cluster.objects.all():
        last = SnapshotRun.objects.filter(cluster=cluster).order_by("-started_at").values_list("started_at", flat=True)
        started = last.first()
        if started is None or now - started >= timedelta(seconds=cluster.snapshot_interval_seconds):
            due.append(cluster.pk)
            snapshot_cluster.delay(cluster.pk)
    return due


@shared_task
def track_rollouts() -> dict[str, int]:
    """Follow rollouts in progress to their end and start the next group of each bulk rollout."""
    return follow_rollouts()
