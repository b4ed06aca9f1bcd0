"""Read-side queries for the dashboard's pages, built on drift.report's verdicts: filtered and grouped
overviews, a source's version timeline, a pod's effective configuration, the audit history.

Everything returns plain dataclasses and model rows, judged at one `now`; nothing here writes."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet
from django.utils import timezone

from drift.diffs import DiffRow, changed_keys, side_by_side
from drift.models import (
    AuditEvent,
    Cluster,
    Consumption,
    Pod,
    Rollout,
    SnapshotRun,
    Source,
    SourceVersion,
    Workload,
)
from drift.report import VERDICT_ORDER, DriftRow, cluster_moment, drift_rows, pod_verdicts
from drift.rollout import ROLLABLE_KINDS

# Every pod mounts this ConfigMap through its service-account token volume; pages fold its rows away.
SERVICE_ACCOUNT_CA = "kube-root-ca.crt"
OVERVIEW_VERDICTS = ["stale", "propagating", "fresh", "unknown", "missing"]


def is_service_account_ca(row: DriftRow) -> bool:
    return row.source["kind"] == "ConfigMap" and row.source["name"] == SERVICE_ACCOUNT_CA and row.mode == "projected"


# -- overview --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverviewFilters:
    cluster: str = ""
    namespace: str = ""
    verdict: str = ""  # a verdict, or "split"
    source: str = ""  # ConfigMap or Secret name (substring)
    q: str = ""  # free text: workload, pod, container, namespace or source

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> OverviewFilters:
        verdict = query.get("verdict", "").strip()
        if verdict not in [*VERDICT_ORDER, "split"]:
            verdict = ""
        return cls(
            cluster=query.get("cluster", "").strip(),
            namespace=query.get("namespace", "").strip(),
            verdict=verdict,
            source=query.get("source", "").strip(),
            q=query.get("q", "").strip(),
        )

    @property
    def active(self) -> bool:
        return any((self.cluster, self.namespace, self.verdict, self.source, self.q))

    def keeps(self, row: DriftRow) -> bool:
        if self.source and self.source.lower() not in row.source["name"].lower():
            return False
        if self.q:
            needle = self.q.lower()
            haystack = (row.workload["name"], row.pod, row.container, row.namespace, row.source["name"])
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
        return next((verdict for verdict in VERDICT_ORDER if self.pods[verdict]), "fresh")


@dataclass
class StaleChart:
    """Stale pods per snapshot over a period, as SVG polyline points (x right in time, y up in count)."""

    points: str
    last_x: float
    last_y: float
    width: int
    height: int
    peak: int
    latest: int
    start: dt.datetime
    end: dt.datetime
    samples: int


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
    chart: StaleChart | None

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
        totals = dict.fromkeys(VERDICT_ORDER, 0)
        for workload in workloads:
            for verdict, count in workload.pods.items():
                totals[verdict] += count
        result.append(
            ClusterOverview(
                cluster=cluster,
                state=state,
                latest_run=finished,
                failing_since=moment.failing_since,
                error=finished.error if state == "failing" else "",
                forbidden_namespaces=sorted(moment.forbidden_namespaces),
                workloads=workloads,
                totals=totals,
                chart=stale_chart(cluster, now),
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
        summary = WorkloadSummary(
            workload_id, first.cluster, first.namespace, first.workload["kind"], first.workload["name"]
        )
        for verdict in pod_verdicts(group).values():
            summary.pods[verdict] += 1
        summary.split = any(row.split for row in group)
        stale = [row for row in group if row.verdict == "stale"]
        summary.stale_sources = sorted({f"{row.source['kind']} {row.source['name']}" for row in stale})
        summary.stale_since = min((row.stale_since for row in stale if row.stale_since), default=None)
        summaries.append(summary)
    return sorted(summaries, key=lambda s: (s.namespace, s.kind, s.name))


def stale_chart(
    cluster: Cluster, now: dt.datetime, hours: int = 24, width: int = 600, height: int = 80, buckets: int = 200
) -> StaleChart | None:
    """Stale pods per finished snapshot over the last `hours` (or since the first snapshot, when the cluster is
    younger), from each run's recorded verdict counts. Runs are folded into `buckets` by their maximum, so a
    short spike stays visible."""
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
    start = min(runs[0][0], now - dt.timedelta(minutes=1))
    span = max((now - start).total_seconds(), 1.0)
    folded: dict[int, int] = {}
    for started, counts in runs:
        bucket = min(buckets - 1, int((started - start).total_seconds() / span * buckets))
        folded[bucket] = max(folded.get(bucket, 0), int((counts or {}).get("stale", 0)))
    peak = max(max(folded.values()), 1)
    coordinates = [
        ((bucket + 0.5) * width / buckets, height - 2 - value * (height - 4) / peak)
        for bucket, value in sorted(folded.items())
    ]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
    latest = int((runs[-1][1] or {}).get("stale", 0))
    last_x, last_y = coordinates[-1]
    return StaleChart(points, last_x, last_y, width, height, max(folded.values()), latest, start, now, len(runs))


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


# -- one workload ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgedRow:
    """A drift row with the ids of the versions it names, so a page can link to their diff."""

    row: DriftRow
    running_version_id: int | None
    current_version_id: int | None


@dataclass
class PodRows:
    pod_id: int
    name: str
    verdict: str
    rows: list[JudgedRow]


@dataclass
class WorkloadDetail:
    workload: Workload
    pods: list[PodRows]
    service_account_rows: list[JudgedRow]
    counts: dict[str, int]
    split_sources: list[str]
    rollouts: list[Rollout]

    @property
    def service_account_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for judged in self.service_account_rows:
            counts[judged.row.verdict] += 1
        return dict(counts)


def find_workload(cluster_name: str, namespace: str, kind: str, name: str) -> Workload | None:
    return (
        Workload.objects.select_related("cluster")
        .filter(cluster__name=cluster_name, namespace=namespace, kind=kind, name=name)
        .first()
    )


def workload_detail(workload: Workload, now: dt.datetime | None = None) -> WorkloadDetail:
    rows = drift_rows(cluster=workload.cluster, namespace=workload.namespace, workload_id=workload.pk, now=now)
    judged = _judged(workload.cluster, workload.namespace, rows)
    verdicts = pod_verdicts(rows)
    pods: dict[int, PodRows] = {}
    service_account: list[JudgedRow] = []
    for item in judged:
        row = item.row
        if row.pod_id not in pods:
            pods[row.pod_id] = PodRows(row.pod_id, row.pod, verdicts[(row.cluster, row.namespace, row.pod)], [])
        if is_service_account_ca(row):
            service_account.append(item)
        else:
            pods[row.pod_id].rows.append(item)
    counts = dict.fromkeys(VERDICT_ORDER, 0)
    for verdict in verdicts.values():
        counts[verdict] += 1
    return WorkloadDetail(
        workload=workload,
        pods=sorted(pods.values(), key=lambda p: p.name),
        service_account_rows=service_account,
        counts=counts,
        split_sources=sorted({f"{r.source['kind']} {r.source['name']}" for r in rows if r.split}),
        rollouts=rollout_history(workload),
    )


def rollout_history(workload: Workload, limit: int = 20) -> list[Rollout]:
    return list(
        Rollout.objects.filter(
            cluster=workload.cluster, namespace=workload.namespace, kind=workload.kind, name=workload.name
        )[:limit]
    )


def _judged(cluster: Cluster, namespace: str, rows: Iterable[DriftRow]) -> list[JudgedRow]:
    rows = list(rows)
    names = {(row.source["kind"], row.source["name"]) for row in rows}
    ids = _version_ids(cluster, namespace, names)
    return [
        JudgedRow(
            row,
            ids.get((row.source["kind"], row.source["name"], row.running_version or "")),
            ids.get((row.source["kind"], row.source["name"], row.current_version or "")),
        )
        for row in rows
    ]


def _version_ids(cluster: Cluster, namespace: str, names: set[tuple[str, str]]) -> dict[tuple[str, str, str], int]:
    if not names:
        return {}
    wanted = Q()
    for kind, name in names:
        wanted |= Q(source__kind=kind, source__name=name)
    versions = SourceVersion.objects.filter(wanted, source__cluster=cluster, source__namespace=namespace)
    return {
        (kind, name, resource_version): pk
        for pk, kind, name, resource_version in versions.values_list(
            "pk", "source__kind", "source__name", "resource_version"
        )
    }


# -- one ConfigMap or Secret ----------------------------------------------------------------------------------


@dataclass
class VersionEntry:
    version: SourceVersion
    number: int
    uid: str
    recreated: bool  # the first version of a lineage that replaced an earlier one (delete and create)
    deleted_at: dt.datetime | None  # set on the last version of a deleted lineage
    changes: dict[str, list[str]]
    current: bool
    previous_id: int | None  # the version before it, for a "diff with previous" link


def source_history(cluster: Cluster, namespace: str, kind: str, name: str) -> list[VersionEntry]:
    """Every version of every lineage of one ConfigMap or Secret, oldest first."""
    lineages = list(
        Source.objects.filter(cluster=cluster, namespace=namespace, kind=kind, name=name).order_by("first_seen", "id")
    )
    entries: list[VersionEntry] = []
    previous: SourceVersion | None = None
    for index, lineage in enumerate(lineages):
        versions = list(lineage.versions.order_by("first_seen", "id"))
        for position, version in enumerate(versions):
            last = position == len(versions) - 1
            entries.append(
                VersionEntry(
                    version=version,
                    number=len(entries) + 1,
                    uid=lineage.uid,
                    recreated=index > 0 and position == 0,
                    deleted_at=lineage.deleted_at if last else None,
                    changes=changed_keys(previous.key_hashes, version.key_hashes) if previous else {},
                    current=False,
                    previous_id=previous.pk if previous else None,
                )
            )
            previous = version
    if entries and lineages[-1].deleted_at is None:
        entries[-1].current = True
    return entries


def source_consumers(
    cluster: Cluster, namespace: str, kind: str, name: str, now: dt.datetime | None = None
) -> list[JudgedRow]:
    rows = [
        row
        for row in drift_rows(cluster=cluster, namespace=namespace, now=now)
        if row.source["kind"] == kind and row.source["name"] == name
    ]
    return _judged(cluster, namespace, rows)


# -- one pod ---------------------------------------------------------------------------------------------------


@dataclass
class EffectiveEntry:
    """One environment variable or file a container gets from a source: what it runs against what the source
    holds now. Values are None for Secrets (never stored) and when the running version is unknown."""

    container: str
    what: str  # env or file
    name: str  # variable name or file path
    source_kind: str
    source_name: str
    key: str
    running_known: bool
    present_then: bool  # the key existed in the running version
    running: str | None
    current: str | None
    present_now: bool
    differs: bool | None  # None: unknown
    hidden: bool
    binary: bool
    rows: list[DiffRow]
    verdict: str
    evidence: str
    reason: str
    running_version: str | None
    current_version: str | None

    @property
    def multiline(self) -> bool:
        return "\n" in (self.running or "") or "\n" in (self.current or "")


@dataclass
class PodDetail:
    pod: Pod
    verdict: str
    entries: list[EffectiveEntry]
    service_account_rows: list[DriftRow]

    @property
    def env(self) -> list[EffectiveEntry]:
        return [entry for entry in self.entries if entry.what == "env"]

    @property
    def files(self) -> list[EffectiveEntry]:
        return [entry for entry in self.entries if entry.what == "file"]


def find_pod(cluster_name: str, namespace: str, name: str) -> Pod | None:
    """The live pod of that name, or the latest one that had it (a StatefulSet reuses names)."""
    pods = Pod.objects.select_related("cluster", "workload").filter(
        cluster__name=cluster_name, namespace=namespace, name=name
    )
    return pods.filter(deleted_at=None).first() or pods.order_by("-first_seen").first()


def pod_detail(pod: Pod, now: dt.datetime | None = None) -> PodDetail:
    rows = [
        row
        for row in drift_rows(cluster=pod.cluster, namespace=pod.namespace, workload_id=pod.workload_id, now=now)
        if row.pod_id == pod.pk
    ]
    verdict = pod_verdicts(rows).get((pod.cluster.name, pod.namespace, pod.name), "unknown")
    consumptions = {
        c.pk: c
        for c in Consumption.objects.filter(pk__in=[row.consumption_id for row in rows]).select_related("container")
    }
    versions = _versions_by_rv(pod.cluster, pod.namespace, {(r.source["kind"], r.source["name"]) for r in rows})
    entries: list[EffectiveEntry] = []
    service_account: list[DriftRow] = []
    for row in rows:
        if is_service_account_ca(row):
            service_account.append(row)
            continue
        known = versions.get((row.source["kind"], row.source["name"]), {})
        running = known.get(row.running_version or "")
        current = known.get(row.current_version or "")
        entries.extend(_effective(consumptions[row.consumption_id], row, running, current))
    return PodDetail(pod, verdict, entries, service_account)


def _versions_by_rv(
    cluster: Cluster, namespace: str, names: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, SourceVersion]]:
    found: dict[tuple[str, str], dict[str, SourceVersion]] = defaultdict(dict)
    if not names:
        return found
    wanted = Q()
    for kind, name in names:
        wanted |= Q(source__kind=kind, source__name=name)
    for version in SourceVersion.objects.filter(
        wanted, source__cluster=cluster, source__namespace=namespace
    ).select_related("source"):
        found[(version.source.kind, version.source.name)][version.resource_version] = version
    return found


def _effective(
    consumption: Consumption, row: DriftRow, running: SourceVersion | None, current: SourceVersion | None
) -> list[EffectiveEntry]:
    """What the container sees of one consumption: (name, key) pairs, each with its running and current value."""
    keys_known = set(running.key_hashes if running else {}) | set(current.key_hashes if current else {})
    if consumption.mode == "env":
        named = sorted(consumption.env_names.items())
        what = "env"
    elif consumption.mode == "envFrom":
        shadowed = set(consumption.shadowed_env)
        named = [
            (consumption.env_prefix + key, key)
            for key in sorted(keys_known)
            if consumption.env_prefix + key not in shadowed
        ]
        what = "env"
    elif consumption.mode == "subPath":
        key = (consumption.keys or [consumption.sub_path.split("/", 1)[0]])[0]
        named = [(consumption.mount_path, key)]
        what = "file"
    else:
        paths = consumption.paths or {key: key for key in sorted(keys_known)}
        named = [(f"{consumption.mount_path.rstrip('/')}/{path}", key) for path, key in sorted(paths.items())]
        what = "file"
    hidden = row.source["kind"] == "Secret"
    entries = []
    for name, key in named:
        running_hash = running.key_hashes.get(key) if running else None
        current_hash = current.key_hashes.get(key) if current else None
        binary = key in ((running.binary_keys if running else []) + (current.binary_keys if current else []))
        running_value = None if hidden or running is None else running.data.get(key)
        current_value = None if hidden or current is None else current.data.get(key)
        differs = None if running is None else running_hash != current_hash
        rows: list[DiffRow] = []
        if differs and not hidden and not binary and ("\n" in (running_value or "") or "\n" in (current_value or "")):
            rows = side_by_side(running_value or "", current_value or "")
        entries.append(
            EffectiveEntry(
                container=row.container, what=what, name=name, source_kind=row.source["kind"],
                source_name=row.source["name"], key=key, running_known=running is not None,
                present_then=running_hash is not None,
                running=running_value, current=current_value, present_now=current_hash is not None,
                differs=differs, hidden=hidden, binary=binary, rows=rows, verdict=row.verdict,
                evidence=row.evidence, reason=row.reason, running_version=row.running_version,
                current_version=row.current_version,
            )
        )  # fmt: skip
    return entries


# -- audit -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    action: str = ""
    actor: str = ""
    cluster: str = ""
    namespace: str = ""
    q: str = ""
    since: dt.date | None = None
    until: dt.date | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> AuditFilters:
        action = query.get("action", "").strip()
        return cls(
            action=action if action in AuditEvent.Action.values or action in action_families() else "",
            actor=query.get("actor", "").strip(),
            cluster=query.get("cluster", "").strip(),
            namespace=query.get("namespace", "").strip(),
            q=query.get("q", "").strip(),
            since=_date(query.get("since", "")),
            until=_date(query.get("until", "")),
        )


def action_families() -> list[str]:
    """'rollout.', 'config.'...: a filter on one of them matches every action of that family."""
    return sorted({value.split(".")[0] + "." for value in AuditEvent.Action.values})


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def audit_events(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Newest first."""
    events = AuditEvent.objects.all()
    if filters.action in action_families():
        events = events.filter(action__startswith=filters.action)
    elif filters.action:
        events = events.filter(action=filters.action)
    if filters.actor:
        events = events.filter(actor=filters.actor)
    if filters.cluster:
        events = events.filter(cluster_name=filters.cluster)
    if filters.namespace:
        events = events.filter(namespace=filters.namespace)
    if filters.q:
        events = events.filter(Q(message__icontains=filters.q) | Q(object_name__icontains=filters.q))
    zone = timezone.get_current_timezone()
    if filters.since:
        events = events.filter(at__gte=dt.datetime.combine(filters.since, dt.time.min, tzinfo=zone))
    if filters.until:
        events = events.filter(
            at__lt=dt.datetime.combine(filters.until + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
        )
    return events
