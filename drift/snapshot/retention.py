"""Pruning old source versions (DRIFTWATCH_VERSION_RETENTION_DAYS); the audit log is never pruned.

A version goes when it was superseded before the cutoff, unless a running container may still hold it: a
container that started before a version was superseded may run that version or any later one (env and
subPath are fixed at start; a volume may lag), so every version superseded after the earliest start among
the running consumers of a source stays. Each source's latest version always stays."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F, Window
from django.db.models.functions import Lead
from django.utils import timezone

from drift.models import Consumption, SourceVersion

BATCH_SIZE = 1000
_NEVER_STARTED = "never started"  # a running container without a start time keeps every version


def prune_versions(retention_days: int, now: datetime | None = None) -> int:
    """Delete the versions retention no longer keeps; returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(days=retention_days)
    superseded = (
        SourceVersion.objects.annotate(
            superseded_at=Window(
                Lead("first_seen"), partition_by=[F("source_id")], order_by=[F("first_seen").asc(), F("id").asc()]
            )
        )
        .filter(superseded_at__lt=cutoff)
        .values_list("id", "source__cluster_id", "source__namespace", "source__kind", "source__name", "superseded_at")
    )
    candidates = list(superseded)
    if not candidates:
        return 0
    earliest = _earliest_running_start(
        {(cluster, namespace, kind, name) for _, cluster, namespace, kind, name, _ in candidates}
    )
    doomed = []
    for pk, cluster, namespace, kind, name, superseded_at in candidates:
        start = earliest.get((cluster, namespace, kind, name))
        if start is None or (start != _NEVER_STARTED and superseded_at <= start):
            doomed.append(pk)
    deleted = 0
    for offset in range(0, len(doomed), BATCH_SIZE):
        deleted += SourceVersion.objects.filter(pk__in=doomed[offset : offset + BATCH_SIZE]).delete()[0]
    return deleted


def _earliest_running_start(
    sources: set[tuple[int, str, str, str]],
) -> dict[tuple[int, str, str, str], datetime | str]:
    """(cluster, namespace, kind, name) -> the earliest start of a running container consuming it."""
    rows = Consumption.objects.filter(
        source_name__in={name for _, _, _, name in sources}, container__ended_at=None, container__pod__deleted_at=None
    ).values_list(
        "container__pod__cluster_id", "container__pod__namespace", "source_kind", "source_name", "container__started_at"
    )
    earliest: dict[tuple[int, str, str, str], datetime] = {}
    never_started: set[tuple[int, str, str, str]] = set()
    for cluster, namespace, kind, name, started in rows.iterator():
        key = (cluster, namespace, kind, name)
        if key not in sources:
            continue
        if started is None:
            never_started.add(key)
        elif key not in earliest or started < earliest[key]:
            earliest[key] = started
    return {**earliest, **dict.fromkeys(never_started, _NEVER_STARTED)}
