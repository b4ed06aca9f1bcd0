"""The overview page: per cluster, how its snapshots go, and per workload how many pods are in each verdict."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.utils import timezone

from dashboard.pages.judged import SERVICE_ACCOUNT_CA
from drift import measured, refresh
from drift.models import Cluster, Pod, SnapshotRun, Source
from drift.verdicts import DriftRow, cluster_moment, drift_rows, pod_verdicts
from drift.vocabulary import ROLLABLE_KINDS, VERDICT_ORDER, Verdict
from drift.watch import WATCHER_DOWN_AFTER_SECONDS

# The order of the overview's columns and filter choices.
OVERVIEW_VERDICTS = [Verdict.STALE, Verdict.PROPAGATING, Verdict.FRESH, Verdict.UNKNOWN, Verdict.MISSING]


@dataclass(frozen=True)
class OverviewFilters:
    cluster: str = ""
    namespace: str = ""
    verdict: str = ""  # a verdict, or "split"
    source: str = ""  # ConfigMap or Secret name (substring)
    q: str = ""  # free text: workload, pod, container, namespace or source

    @property
    def active(self) -> bool:
        return any((self.cluster, self.namespace, self.verdict, self.source, self.q))

    def keeps(self, row: DriftRow) -> bool:
        if self.source and self.source.lower() not in row.source.name.lower():
            return False
        if self.q:
            needle = self.q.lower()
            haystack = (row.workload.name, row.pod, row.container, row.namespace, row.source.name)
            return any(needle in value.lower() for value in haystack)
        return True


@dataclass
class WorkloadSummary:
    workload_id: int
    cluster: str
    namespace: str
    kind: str
    name: str
    pods: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICT_ORDER, 0))
    split: bool = False
    stale_sources: list[str] = field(default_factory=list)
    stale_since: dt.datetime | None = None

    @property
    def rollable(self) -> bool:
        return self.kind in ROLLABLE_KINDS

    @property
    def total(self) -> int:
        return sum(self.pods.values())

    @property
    def worst(self) -> str:
        return next((verdict for verdict in VERDICT_ORDER if self.pods[verdict]), Verdict.FRESH)


@dataclass(frozen=True)
class StaleSeries:
    """Stale pods per finished snapshot over a period, folded into `buckets` by their maximum (so a short spike
    stays visible). Drawing it is the template's job (dashboard.templatetags.charts)."""

    values: list[tuple[int, int]]  # (bucket, stale pods), buckets in time order
    buckets: int
    start: dt.datetime
    end: dt.datetime
    samples: int
    latest: int

    @property
    def peak(self) -> int:
        return max(value for _, value in self.values)


@dataclass
class ClusterOverview:
    cluster: Cluster
    state: str  # pending, failing, partial or ok
    latest_run: SnapshotRun | None
    failing_since: dt.datetime | None
    error: str
    forbidden_namespaces: list[str]
    workloads: list[WorkloadSummary]
    totals: dict[str, int]
    chart: StaleSeries | None
    refresh_delays: refresh.RefreshDelays = field(default_factory=lambda: refresh.RefreshDelays(()))

    @property
    def watcher_down(self) -> bool:
        """No `manage.py watch` has heard from this cluster lately: versions between snapshots are missed."""
        heartbeat = self.cluster.watch_heartbeat_at
        return heartbeat is None or timezone.now() - heartbeat > dt.timedelta(seconds=WATCHER_DOWN_AFTER_SECONDS)

    @property
    def measured_window(self) -> dt.timedelta | None:
        """The propagation window the verdicts use, when the measured delays narrowed the configured one."""
        configured = dt.timedelta(seconds=self.cluster.propagation_window_seconds)
        window = refresh.effective_window(self.refresh_delays.seconds, configured)
        return window if window < configured else None

    @property
    def namespaces(self) -> list[tuple[str, list[WorkloadSummary]]]:
        grouped: dict[str, list[WorkloadSummary]] = defaultdict(list)
        for workload in self.workloads:
            grouped[workload.namespace].append(workload)
        return sorted(grouped.items())


def overview(filters: OverviewFilters, now: dt.datetime | None = None) -> list[ClusterOverview]:
    """Per cluster: how its snapshots go, and per workload how many pods are in each (worst) verdict."""
    now = now or timezone.now()
    clusters = Cluster.objects.all()
    if filters.cluster:
        clusters = clusters.filter(name=filters.cluster)
    result = []
    for cluster in clusters:
        finished = cluster.runs.exclude(status=SnapshotRun.Status.RUNNING).first()
        moment = cluster_moment(cluster, now)
        if finished is None:
            state = "pending"
        elif finished.status == SnapshotRun.Status.FAILED:
            state = "failing"
        elif finished.status == SnapshotRun.Status.PARTIAL:
            state = "partial"
        else:
            state = "ok"
        rows = [
            row
            for row in drift_rows(cluster=cluster, namespace=filters.namespace or None, now=now)
            if filters.keeps(row)
        ]
        workloads = _summaries(rows)
        if filters.verdict == "split":
            workloads = [w for w in workloads if w.split]
        elif filters.verdict:
            workloads = [w for w in workloads if w.pods[filters.verdict]]
        totals: dict[str, int] = dict.fromkeys(VERDICT_ORDER, 0)
        for workload in workloads:
            for verdict, count in workload.pods.items():
                totals[verdict] += count
        result.append(
            ClusterOverview(
                cluster=cluster,
                state=state,
                latest_run=finished,
                failing_since=moment.failing_since,
                error=finished.error if finished is not None and state == "failing" else "",
                forbidden_namespaces=sorted(moment.forbidden_namespaces),
                workloads=workloads,
                totals=totals,
                chart=stale_series(cluster, now),
                refresh_delays=measured.refresh_delays(cluster, now),
            )
        )
    return result


def _summaries(rows: list[DriftRow]) -> list[WorkloadSummary]:
    by_workload: dict[int, list[DriftRow]] = defaultdict(list)
    for row in rows:
        by_workload[row.workload_id].append(row)
    summaries = []
    for workload_id, group in by_workload.items():
        first = group[0]
        summary = WorkloadSummary(workload_id, first.cluster, first.namespace, first.workload.kind, first.workload.name)
        for verdict in pod_verdicts(group).values():
            summary.pods[verdict] += 1
        summary.split = any(row.split for row in group)
        stale = [row for row in group if row.verdict == Verdict.STALE]
        summary.stale_sources = sorted({str(row.source) for row in stale})
        summary.stale_since = min((row.stale_since for row in stale if row.stale_since), default=None)
        summaries.append(summary)
    return sorted(summaries, key=lambda s: (s.namespace, s.kind, s.name))


def stale_series(cluster: Cluster, now: dt.datetime, hours: int = 24, buckets: int = 200) -> StaleSeries | None:
    """Stale pods per finished snapshot over the last `hours` (or since the first snapshot, when the cluster is
    younger), from each run's recorded verdict counts."""
    runs = list(
        cluster.runs.filter(
            started_at__gte=now - dt.timedelta(hours=hours),
            status__in=[SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL],
        )
        .order_by("started_at")
        .values_list("started_at", "verdict_counts")
    )
    if not runs:
        return None
    starts = [started for started, _ in runs]
    stale = [int((counts or {}).get(Verdict.STALE, 0)) for _, counts in runs]
    start = min(starts[0], now - dt.timedelta(minutes=1))
    span = max((now - start).total_seconds(), 1.0)
    folded: dict[int, int] = {}
    for started, pods in zip(starts, stale, strict=True):
        bucket = min(buckets - 1, int((started - start).total_seconds() / span * buckets))
        folded[bucket] = max(folded.get(bucket, 0), pods)
    return StaleSeries(sorted(folded.items()), buckets, start, now, len(runs), stale[-1])


def filter_options(cluster_name: str = "") -> dict[str, list[str]]:
    """What the overview's filter controls offer."""
    pods = Pod.objects.filter(deleted_at=None)
    sources = Source.objects.filter(deleted_at=None)
    if cluster_name:
        pods = pods.filter(cluster__name=cluster_name)
        sources = sources.filter(cluster__name=cluster_name)
    return {
        "clusters": list(Cluster.objects.values_list("name", flat=True)),
        "namespaces": sorted(set(pods.values_list("namespace", flat=True))),
        "sources": sorted(set(sources.exclude(name=SERVICE_ACCOUNT_CA).values_list("name", flat=True))),
    }
