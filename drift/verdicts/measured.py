"""The refresh delays Driftwatch has observed in one cluster, read from the file probes' ``..data`` times.

Bounded, so a page view costs the same however long the cluster has been watched: the newest
``SAMPLE_LIMIT`` refreshes of the last ``LOOKBACK``, one per pod and source (a pod's containers share its
volume, and every cycle that reads the same ``..data`` folder reads the same write)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime, timedelta

from drift.models import Cluster, Observation, SourceVersion
from drift.verdicts import refresh
from drift.vocabulary import REFRESHED_MODES

LOOKBACK = timedelta(days=7)
SAMPLE_LIMIT = 100


def refresh_delays(cluster: Cluster, now: datetime) -> refresh.RefreshDelays:
    return _samples(cluster, now)[0]


def _samples(cluster: Cluster, now: datetime) -> tuple[refresh.RefreshDelays, datetime | None]:
    """The delays, and the moment the oldest write they were read from leaves the lookback (None: no write),
    after which the same facts may give other delays."""
    since = now - LOOKBACK
    writes = list(
        Observation.objects.filter(
            consumption__container__pod__cluster=cluster,
            consumption__mode__in=REFRESHED_MODES,
            volume_written_at__gte=since,
            volume_written_at__lte=now,
        )
        .values_list(
            "volume_written_at", "consumption__container__pod_id", "consumption__container__pod__namespace",
            "consumption__source_kind", "consumption__source_name", "consumption__container__pod__started_at",
        )
        .order_by("-volume_written_at", "consumption__container__pod_id")
        .distinct()[: SAMPLE_LIMIT * 4]
    )  # fmt: skip
    if not writes:
        return refresh.RefreshDelays(()), None
    ages_out = min(written for written, *_ in writes if written is not None) + LOOKBACK
    sources = {(namespace, kind, name) for _, _, namespace, kind, name, _ in writes}
    changes: dict[tuple[str, str, str], list[datetime]] = defaultdict(list)
    timelines: dict[tuple[str, str, str], list[SourceVersion]] = defaultdict(list)
    for version in (
        SourceVersion.objects.filter(
            source__cluster=cluster,
            source__name__in={name for _, _, name in sources},
            first_seen__gte=since - refresh.LONGEST_BELIEVABLE,
        )
        .select_related("source")
        .only("first_seen", "modified_at", "source__namespace", "source__kind", "source__name", "source__uid")
        .order_by("source_id", "first_seen", "id")
    ):
        key = (version.source.namespace, version.source.kind, version.source.name)
        if key in sources:
            timelines[key].append(version)
    for key, versions in timelines.items():
        # The first version of a lineage is when Driftwatch first saw it, not a change the kubelet followed.
        for previous, version in itertools.pairwise(versions):
            if previous.source_id == version.source_id:
                changes[key].append(version.appeared_at(previous.first_seen))
    delays: list[float] = []
    seen: set[tuple[int, str, str, datetime]] = set()
    for written_at, pod_id, namespace, kind, name, pod_started_at in writes:
        if written_at is None or (pod_id, kind, name, written_at) in seen:
            continue
        seen.add((pod_id, kind, name, written_at))
        delay = refresh.refresh_delay(written_at, pod_started_at, changes.get((namespace, kind, name), ()))
        if delay is not None:
            delays.append(delay)
            if len(delays) == SAMPLE_LIMIT:
                break
    return refresh.RefreshDelays(tuple(delays)), ages_out


def propagation_window(cluster: Cluster, now: datetime) -> timedelta:
    """The window volumes are judged against: narrowed by what this cluster's kubelets were seen to do."""
    return propagation_window_until(cluster, now)[0]


def propagation_window_until(cluster: Cluster, now: datetime) -> tuple[timedelta, datetime | None]:
    """The window, and the moment it may change on the clock alone (a sample leaves the lookback; None: never)."""
    configured = timedelta(seconds=cluster.propagation_window_seconds)
    delays, ages_out = _samples(cluster, now)
    return refresh.effective_window(delays.seconds, configured), ages_out
