"""The refresh delays Driftwatch has observed in one cluster, read from the file probes' ``..data`` times.

Bounded, so a page view costs the same however long the cluster has been watched: the newest
``SAMPLE_LIMIT`` refreshes of the last ``LOOKBACK``, one per pod and source (a pod's containers share its
volume, and every cycle that reads the same ``..data`` folder reads the same write)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber

from drift.models import Cluster, Observation, SourceVersion
from drift.verdicts import refresh
from drift.vocabulary import REFRESHED_MODES

LOOKBACK = timedelta(days=7)
SAMPLE_LIMIT = 100


def refresh_delays(cluster: Cluster, now: datetime) -> refresh.RefreshDelays:
    return _samples_of([cluster], now)[cluster.pk][0]


def refresh_delays_of(clusters: Sequence[Cluster], now: datetime) -> dict[int, refresh.RefreshDelays]:
    """``refresh_delays`` of several clusters (by id) in two queries however many there are (the overview)."""
    return {pk: delays for pk, (delays, _) in _samples_of(clusters, now).items()}


_WRITE_FIELDS = (
    "consumption__container__pod__cluster_id", "volume_written_at", "consumption__container__pod_id",
    "consumption__container__pod__namespace", "consumption__source_kind", "consumption__source_name",
    "consumption__container__pod__started_at",
)  # fmt: skip


def _samples_of(clusters: Sequence[Cluster], now: datetime) -> dict[int, tuple[refresh.RefreshDelays, datetime | None]]:
    """Per cluster (by id): the delays, and the moment the oldest write they were read from leaves the lookback
    (None: no write), after which the same facts may give other delays. One query reads each cluster's newest
    writes (each cluster its own bound), one the versions of their sources."""
    since = now - LOOKBACK
    # Grouped, not DISTINCT: a window is computed after GROUP BY (but before DISTINCT), so each cluster's distinct
    # writes are numbered newest first and cut at its own bound, in one query however many clusters there are.
    newest = (
        Observation.objects.filter(
            consumption__container__pod__cluster__in=[c.pk for c in clusters],
            consumption__mode__in=REFRESHED_MODES,
            volume_written_at__gte=since,
            volume_written_at__lte=now,
        )
        .order_by()  # the model's ordering would join the GROUP BY (every read of a write its own row)
        .values(*_WRITE_FIELDS)
        .annotate(reads=Count("pk"))
        .annotate(
            place=Window(
                RowNumber(),
                partition_by=[F("consumption__container__pod__cluster_id")],
                order_by=[F("volume_written_at").desc(), F("consumption__container__pod_id").asc()],
            ),
        )
        .filter(place__lte=SAMPLE_LIMIT * 4)
        .values_list(*_WRITE_FIELDS)
    )
    writes: dict[int, list[tuple]] = defaultdict(list)
    for cluster_id, *write in newest:
        writes[cluster_id].append(tuple(write))
    for each in writes.values():  # the outer query keeps no order: newest first again
        each.sort(key=lambda write: (-write[0].timestamp(), write[1]))
    result: dict[int, tuple[refresh.RefreshDelays, datetime | None]] = {
        cluster.pk: (refresh.RefreshDelays(()), None) for cluster in clusters
    }
    if not writes:
        return result
    sources = {(pk, namespace, kind, name) for pk, each in writes.items() for _, _, namespace, kind, name, _ in each}
    timelines: dict[tuple[int, str, str, str], list[SourceVersion]] = defaultdict(list)
    for version in (
        SourceVersion.objects.filter(
            source__cluster__in=list(writes),
            source__name__in={name for *_, name in sources},
            first_seen__gte=since - refresh.LONGEST_BELIEVABLE,
        )
        .select_related("source")
        .only(
            "first_seen", "modified_at", "source__cluster_id", "source__namespace", "source__kind", "source__name",
            "source__uid",
        )
        .order_by("source_id", "first_seen", "id")
    ):  # fmt: skip
        key = (version.source.cluster_id, version.source.namespace, version.source.kind, version.source.name)
        if key in sources:
            timelines[key].append(version)
    changes: dict[tuple[int, str, str, str], list[datetime]] = defaultdict(list)
    for key, versions in timelines.items():
        # The first version of a lineage is when Driftwatch first saw it, not a change the kubelet followed.
        for previous, version in itertools.pairwise(versions):
            if previous.source_id == version.source_id:
                changes[key].append(version.appeared_at(previous.first_seen))
    for pk, each in writes.items():
        result[pk] = _delays(pk, each, changes)
    return result


def _delays(
    cluster_id: int, writes: list[tuple], changes: dict[tuple[int, str, str, str], list[datetime]]
) -> tuple[refresh.RefreshDelays, datetime | None]:
    ages_out = min(written for written, *_ in writes if written is not None) + LOOKBACK
    delays: list[float] = []
    seen: set[tuple[int, str, str, datetime]] = set()
    for written_at, pod_id, namespace, kind, name, pod_started_at in writes:
        if written_at is None or (pod_id, kind, name, written_at) in seen:
            continue
        seen.add((pod_id, kind, name, written_at))
        changed = changes.get((cluster_id, namespace, kind, name), ())
        delay = refresh.refresh_delay(written_at, pod_started_at, changed)
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
    delays, ages_out = _samples_of([cluster], now)[cluster.pk]
    return refresh.effective_window(delays.seconds, configured), ages_out
