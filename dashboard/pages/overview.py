"""The overview page: per cluster, how its snapshots go, what needs attention, and counts of the rest.

It reads the stored verdicts and summaries (drift.verdicts.store), so its queries do not grow with the pods."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode

from django.utils import timezone

from dashboard.pages.version_links import SERVICE_ACCOUNT_CA
from dashboard.pages.workload import next_run_words
from drift import verdicts
from drift.models import (
    AuditWebhookRejection,
    Cluster,
    ClusterLease,
    ContainerInstance,
    Pod,
    SnapshotRun,
    Source,
    Workload,
)
from drift.snapshot.watch import WATCHER_DOWN_AFTER_SECONDS
from drift.verdicts import DriftRow, WorkloadSummary, cluster_moment, measured, refresh
from drift.verdicts.rules import Advice, restart_summary, workload_advice
from drift.vocabulary import Verdict, WorkloadKind

# The order of the overview's columns and filter choices.
OVERVIEW_VERDICTS = [
    Verdict.STALE, Verdict.UNRELOADED, Verdict.PROPAGATING, Verdict.FRESH, Verdict.UNKNOWN, Verdict.MISSING,
]  # fmt: skip


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


# Workloads listed per cluster and page: the overview lists what needs attention, not every workload.
PAGE_SIZE = 25
# With several clusters shown, each card lists its worst few and links to its own view (pages of PAGE_SIZE and the
# counts per namespace): the page then costs about what one cluster's does, however many clusters there are.
CARD_SIZE = 5


@dataclass(frozen=True)
class NamespaceCounts:
    """One namespace of a cluster: workloads that need attention, fresh ones, and pods per verdict."""

    namespace: str
    attention: int
    fresh: int
    pods: dict[str, int]


@dataclass
class ClusterOverview:
    cluster: Cluster
    state: str  # pending, failing, partial or ok
    latest_run: SnapshotRun | None
    failing_since: dt.datetime | None
    error: str
    forbidden_namespaces: list[str]
    workloads: list[WorkloadSummary]  # this page of the listed workloads
    listed: int  # how many workloads the filters list, over every page
    page: int
    pages: int
    quiet: int  # fresh workloads not listed (the default view lists only those needing attention)
    totals: dict[str, int]
    namespace_counts: list[NamespaceCounts]
    chart: StaleSeries | None
    refresh_delays: refresh.RefreshDelays = field(default_factory=lambda: refresh.RefreshDelays(()))
    namespace_choices: set[str] = field(default_factory=set)  # empty when not known without another query
    # What its audit webhook refused, (reason, count): single events ("event ...") and whole batches.
    audit_refusals: list[tuple[str, int]] = field(default_factory=list)
    restart_tools: dict[int, str] = field(default_factory=dict)  # workload id -> "Reloader", ... (the badge)
    next_runs: dict[int, str] = field(default_factory=dict)  # a CronJob's id -> its next run in words
    lease: ClusterLease | None = None  # which watcher process holds the cluster (drift.snapshot.leases)
    compact: bool = False  # one card of several: its worst CARD_SIZE workloads, no table per namespace
    own_query: str = ""  # the query string of this cluster's own view, with the same filters

    @property
    def watched_by(self) -> ClusterLease | None:
        """The lease of the process watching this cluster now; None when no process holds it."""
        return self.lease if self.lease is not None and self.lease.held_at(timezone.now()) else None

    restart_workloads: int = 0  # workloads a restart would bring up to date (the line across clusters)
    as_of: dt.datetime | None = None  # the moment the stored verdicts shown are as of
    now: dt.datetime | None = None

    @property
    def as_of_seconds(self) -> int | None:
        if self.as_of is None or self.now is None:
            return None
        return max(0, round((self.now - self.as_of).total_seconds()))

    def advice(self, summary: WorkloadSummary) -> list[Advice]:
        """Why this row needs attention and what to do, per mode (drift.verdicts.rules.workload_advice)."""
        refresh_by = timezone.localtime(summary.expires_at) if summary.expires_at is not None else None
        median = self.refresh_delays.median if self.refresh_delays.count else None
        said = workload_advice(summary.modes, refresh_by, median)
        next_run = self.next_runs.get(summary.workload_id)
        return [Advice(next_run, restart=False), *said] if next_run else said

    @property
    def rows(self) -> list[tuple[str, list[tuple[WorkloadSummary, list[Advice]]]]]:
        """The page's workloads per namespace, each with its advice."""
        return [(ns, [(w, self.advice(w)) for w in workloads]) for ns, workloads in self.namespaces]

    @property
    def refused_audit_events(self) -> list[tuple[str, int]]:
        return [(reason, count) for reason, count in self.audit_refusals if reason.startswith("event ")]

    @property
    def refused_audit_batches(self) -> list[tuple[str, int]]:
        return [(reason, count) for reason, count in self.audit_refusals if not reason.startswith("event ")]

    @property
    def refused_audit_event_count(self) -> int:
        return sum(count for _, count in self.refused_audit_events)

    @property
    def refused_audit_batch_count(self) -> int:
        return sum(count for _, count in self.refused_audit_batches)

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

    @property
    def previous_page(self) -> int | None:
        return self.page - 1 if self.page > 1 else None

    @property
    def next_page(self) -> int | None:
        return self.page + 1 if self.page < self.pages else None


def clusters_shown(filters: OverviewFilters) -> list[Cluster]:
    clusters = Cluster.objects.select_related("lease")  # which watcher holds it, in the same query
    return list(clusters.filter(name=filters.cluster) if filters.cluster else clusters)


def overview(
    filters: OverviewFilters, now: dt.datetime | None = None, page: int = 1, clusters: list[Cluster] | None = None
) -> list[ClusterOverview]:
    """Per cluster: how its snapshots go, counts per verdict and namespace, and one page of the workloads that
    need attention (stale, missing, unknown, propagating or split), worst first; with a verdict filter, the
    workloads with a pod in that verdict; fresh workloads are counted, and listed when asked for."""
    now = now or timezone.now()
    clusters = clusters_shown(filters) if clusters is None else clusters
    searching = bool(filters.source or filters.q)
    compact = len(clusters) > 1
    page_size = CARD_SIZE if compact else PAGE_SIZE
    page = 1 if compact else page  # a card's further workloads are in its cluster's own view
    if searching:
        found = _matching(clusters, filters, now)
        pages = {c.pk: _searched(found[c.pk], filters, page, page_size) for c in clusters}
    else:
        listing = filters.verdict or verdicts.ATTENTION
        pages = verdicts.workload_pages(clusters, filters.namespace or None, listing, page, page_size, now)
    moments = verdicts.as_of(clusters, now)
    tools = restart_tools([w.workload_id for shown in pages.values() for w in shown.workloads])
    runs = next_runs(
        [w.workload_id for shown in pages.values() for w in shown.workloads if w.kind == WorkloadKind.CRON_JOB], now
    )
    refusals: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name, reason, count in AuditWebhookRejection.objects.filter(
        cluster_name__in=[cluster.name for cluster in clusters]
    ).values_list("cluster_name", "reason", "count"):
        refusals[name].append((reason, count))
    # One query per table for every cluster shown, not one per cluster: the page's queries do not grow with them.
    latest_runs = latest_finished_runs(clusters)
    charted = charted_runs(clusters, now)
    delays = measured.refresh_delays_of(clusters, now)
    # The chart counts the whole cluster: with a namespace filter or a search, the pages counted less.
    whole_cluster = not (filters.namespace or searching)
    whole_counts = {} if whole_cluster else verdicts.clusters_counts(clusters, now)
    result = []
    for cluster in clusters:
        finished = latest_runs.get(cluster.pk)
        moment = cluster_moment(cluster, now, latest=finished)
        if finished is None:
            state = "pending"
        elif finished.status == SnapshotRun.Status.FAILED:
            state = "failing"
        elif finished.status == SnapshotRun.Status.PARTIAL:
            state = "partial"
        else:
            state = "ok"
        shown = pages[cluster.pk]
        namespaces = sorted(shown.namespaces.items())
        totals = dict(shown.listed.pods) if filters.verdict else shown.pods
        # The chart's last point is the stale pods the badges count, from the same stored verdicts (a watcher's
        # version may have changed them since the last snapshot recorded its counts).
        stale_now = shown.pods[Verdict.STALE] if whole_cluster else whole_counts[cluster.pk][Verdict.STALE]
        result.append(
            ClusterOverview(
                cluster=cluster,
                state=state,
                latest_run=finished,
                failing_since=moment.failing_since,
                error=finished.error if finished is not None and state == "failing" else "",
                forbidden_namespaces=sorted(moment.forbidden_namespaces),
                workloads=shown.workloads,
                listed=shown.listed_count,
                page=shown.page,
                pages=shown.pages,
                quiet=0 if filters.verdict or searching else sum(tally.fresh for _, tally in namespaces),
                totals=totals,
                namespace_counts=[NamespaceCounts(ns, t.attention, t.fresh, t.pods) for ns, t in namespaces],
                chart=stale_series(cluster, now, latest=stale_now, runs=charted[cluster.pk]),
                refresh_delays=delays[cluster.pk],
                namespace_choices=shown.every_namespace,
                audit_refusals=refusals[cluster.name],
                restart_tools={w.workload_id: tools[w.workload_id] for w in shown.workloads if w.workload_id in tools},
                next_runs={w.workload_id: runs[w.workload_id] for w in shown.workloads if w.workload_id in runs},
                lease=_lease(cluster),
                restart_workloads=shown.restart,
                as_of=moments.get(cluster.pk),
                now=now,
                compact=compact,
                own_query=urlencode({**_query_of(filters), "cluster": cluster.name}),
            )
        )
    return result


def latest_finished_runs(clusters: list[Cluster]) -> dict[int, SnapshotRun]:
    """Cluster id -> its latest snapshot run that ended (none while its first one runs): one query."""
    runs = SnapshotRun.objects.filter(cluster__in=[c.pk for c in clusters]).exclude(status=SnapshotRun.Status.RUNNING)
    return {run.cluster_id: run for run in runs.order_by("cluster_id", "-started_at", "-id").distinct("cluster_id")}


CHART_HOURS = 24


def charted_runs(
    clusters: list[Cluster], now: dt.datetime, hours: int = CHART_HOURS
) -> dict[int, list[tuple[dt.datetime, dict]]]:
    """Cluster id -> (start, verdict counts) of its runs that read it over the last `hours`, oldest first: the
    points of every chart shown, in one query."""
    found: dict[int, list[tuple[dt.datetime, dict]]] = {c.pk: [] for c in clusters}
    for cluster_id, started_at, counts in (
        SnapshotRun.objects.filter(
            cluster__in=list(found),
            started_at__gte=now - dt.timedelta(hours=hours),
            status__in=[SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL],
        )
        .order_by("cluster_id", "started_at")
        .values_list("cluster_id", "started_at", "verdict_counts")
    ):
        found[cluster_id].append((started_at, counts))
    return found


def _query_of(filters: OverviewFilters) -> dict[str, str]:
    return {name: value for name, value in asdict(filters).items() if value}


def _lease(cluster: Cluster) -> ClusterLease | None:
    try:
        return cluster.lease
    except ClusterLease.DoesNotExist:
        return None


def next_runs(cron_job_ids: list[int], now: dt.datetime) -> dict[int, str]:
    """A CronJob's id -> when its next Job reads the current config, for the advice: one query for the page's."""
    if not cron_job_ids:
        return {}
    schedules = Workload.objects.filter(pk__in=cron_job_ids).values_list("pk", "schedule")
    return {pk: next_run_words(WorkloadKind.CRON_JOB, schedule, now) for pk, schedule in schedules}


def restart_tools(workload_ids: list[int]) -> dict[int, str]:
    """Workload id -> the restart tools (Reloader, Wave, Helm checksum) its live pods say the owner enlisted, for
    the badge: one query for the page's workloads."""
    if not workload_ids:
        return {}
    found: dict[int, set[str]] = defaultdict(set)
    for workload_id, tool in (
        ContainerInstance.objects.filter(
            pod__workload_id__in=workload_ids, pod__deleted_at=None, ended_at=None, reload_hints__has_key="restart_tool"
        )
        .values_list("pod__workload_id", "reload_hints__restart_tool")
        .order_by()  # the model's ordering would add its columns to the DISTINCT
        .distinct()
    ):
        found[workload_id].add(str(tool).split(" (", 1)[0])
    return {workload_id: ", ".join(sorted(names)) for workload_id, names in found.items()}


def _searched(
    found: list[WorkloadSummary], filters: OverviewFilters, page: int, page_size: int = PAGE_SIZE
) -> verdicts.WorkloadPage:
    """A search lists what it found (in one cluster), fresh or not (with a verdict filter, what has a pod in that
    verdict), by name; the counts are of what it found."""
    listed = [w for w in found if verdicts.listed_by(filters.verdict, w)] if filters.verdict else list(found)
    listed.sort(key=lambda s: (s.namespace, s.kind, s.name))
    shown = verdicts.WorkloadPage()
    for summary in found:
        shown.namespaces.setdefault(summary.namespace, verdicts.Tally()).add(summary)
    for summary in listed:
        shown.listed.add(summary)
    shown.turn_to(page, page_size)
    shown.workloads = listed[(shown.page - 1) * page_size : shown.page * page_size]
    return shown


def _matching(clusters: list[Cluster], filters: OverviewFilters, now: dt.datetime) -> dict[int, list[WorkloadSummary]]:
    """Per cluster (by id), what a search finds: it counts only the rows it matches (a pod's name finds that pod),
    summarised from the stored rows of the workloads the database says match; every cluster in the same queries."""
    namespace = filters.namespace or None
    ids = verdicts.clusters_matching_workloads(clusters, namespace, filters.source, filters.q)
    matched = [c for c in clusters if ids.get(c.pk)]
    rows = verdicts.clusters_rows(matched, namespace, ids, now) if matched else {}
    return {c.pk: verdicts.summarise(row for row in rows.get(c.pk, []) if filters.keeps(row)) for c in clusters}


def stale_series(
    cluster: Cluster,
    now: dt.datetime,
    hours: int = CHART_HOURS,
    buckets: int = 200,
    latest: int | None = None,
    runs: list[tuple[dt.datetime, dict]] | None = None,
) -> StaleSeries | None:
    """Stale pods per finished snapshot over the last `hours` (or since the first snapshot, when the cluster is
    younger), from each run's recorded verdict counts; ``latest``, the stale pods the stored verdicts count now,
    is the last point (so the chart and the badges never disagree). ``runs``: ``charted_runs``' for this
    cluster, when the caller read them."""
    if runs is None:
        runs = charted_runs([cluster], now, hours)[cluster.pk]
    if not runs:
        return None
    starts = [started for started, _ in runs]
    stale = [int((counts or {}).get(Verdict.STALE, 0)) for _, counts in runs]
    if latest is not None:
        starts.append(now)
        stale.append(latest)
    start = min(starts[0], now - dt.timedelta(minutes=1))
    span = max((now - start).total_seconds(), 1.0)
    folded: dict[int, int] = {}
    for started, pods in zip(starts, stale, strict=True):
        bucket = min(buckets - 1, int((started - start).total_seconds() / span * buckets))
        folded[bucket] = max(folded.get(bucket, 0), pods)
    if latest is not None:
        folded[buckets - 1] = latest  # now: what the stored verdicts say, not the bucket's maximum
    return StaleSeries(sorted(folded.items()), buckets, start, now, len(runs), stale[-1])


def filter_options(filters: OverviewFilters, shown: list[ClusterOverview]) -> dict[str, list[str]]:
    """What the overview's filter controls offer, reusing what the page read when it can: the clusters shown are
    every cluster when none is chosen, and the stored counts name the namespaces with a workload (a search does
    not read those, so it asks the pods). The names of ConfigMaps and Secrets come on demand: ``source_names``."""
    if filters.cluster:
        clusters = list(Cluster.objects.values_list("name", flat=True))
    else:
        clusters = sorted(item.cluster.name for item in shown)
    namespaces = set().union(*(item.namespace_choices for item in shown))
    if filters.source or filters.q or not namespaces:
        pods = Pod.objects.filter(deleted_at=None)
        if filters.cluster:
            pods = pods.filter(cluster__name=filters.cluster)
        namespaces = set(pods.order_by().values_list("namespace", flat=True).distinct())
    return {"clusters": clusters, "namespaces": sorted(namespaces)}


def source_names(cluster_name: str = "") -> list[str]:
    """The names the source filter suggests: every live ConfigMap and Secret (of one cluster, when named), once
    each. Asked for when the field is first focused, not with every page: a cluster may have thousands."""
    sources = Source.objects.filter(deleted_at=None).exclude(name=SERVICE_ACCOUNT_CA)
    if cluster_name:
        sources = sources.filter(cluster__name=cluster_name)
    return list(sources.order_by("name").values_list("name", flat=True).distinct())


def restart_line(shown: list[ClusterOverview]) -> str:
    """ "3 workloads need a restart in 1 of 4 clusters", over the clusters shown."""
    return restart_summary(item.restart_workloads for item in shown)
