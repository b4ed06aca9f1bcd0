"""The one read path of verdicts: stored rows, per-workload summaries, the overview's stamp, and the pods per
verdict a snapshot run records.

Readers use stored verdicts that have not expired and judge the expired ones again in memory (a GET changes
nothing), or a whole cluster whose stored verdicts are not there or no longer valid (a cluster never judged, its
settings changed, a measured delay aged out).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, F, IntegerField, Max, Min, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from drift.models import Cluster, ClusterVerdicts, SnapshotRun, StoredVerdict, WorkloadVerdicts
from drift.verdicts.facts import DriftRow, SourceRef, WorkloadRef, judge_cluster, live_consumptions
from drift.verdicts.summary import WorkloadSummary, summarise
from drift.vocabulary import VERDICT_ORDER, Evidence, Mode, Verdict


@dataclass(frozen=True)
class Plan:
    """How to read one cluster: ``valid`` when its stored verdicts hold (bar expired workloads); otherwise
    (never judged, settings saved since, a measured delay aged out) it is judged whole."""

    stored: ClusterVerdicts | None
    valid: bool


def read_plans(clusters: Iterable[Cluster], now: datetime) -> dict[int, Plan]:
    records = {record.pk: record for record in ClusterVerdicts.objects.filter(cluster__in=[c.pk for c in clusters])}
    plans = {}
    for cluster in clusters:
        record = records.get(cluster.pk)
        valid = record is not None and (record.expires_at is None or record.expires_at > now)
        plans[cluster.pk] = Plan(record, valid)
    return plans


def workload_summaries(
    cluster: Cluster | str | None = None,
    namespace: str | None = None,
    attention: bool | None = None,
    now: datetime | None = None,
) -> list[WorkloadSummary]:
    """Per workload with a running pod that reads a ConfigMap or Secret: pods per verdict, consumptions per
    mode and verdict, split, stale sources, stale since. Filter by cluster (or its name), namespace, and
    ``attention`` (True: only workloads with a pod not fresh or split; False: only the others).

    Two indexed queries plus, for the workloads whose stored verdicts expired, one in-memory judgement of
    them (a few queries per cluster); the number of pods does not change the number of queries."""
    now = now or timezone.now()
    clusters = clusters_named(cluster)
    plans = read_plans(clusters, now)
    stored = WorkloadVerdicts.objects.filter(cluster__in=[c.pk for c in clusters if plans[c.pk].valid])
    if namespace:
        stored = stored.filter(namespace=namespace)
    if attention is not None:
        # A workload whose verdicts expire may change group, so expired ones are read whatever the filter.
        stored = stored.filter(Q(attention=attention) | Q(expires_at__lte=now))
    names = {c.pk: c.name for c in clusters}
    result: list[WorkloadSummary] = []
    expired: dict[int, list[int]] = defaultdict(list)
    for values in stored.order_by("cluster_id", "namespace", "kind", "name").values_list(*SUMMARY_FIELDS):
        summary = stored_summary(values, names)
        if summary.expires_at is not None and summary.expires_at <= now:
            expired[values[1]].append(summary.workload_id)
            continue
        result.append(summary)
    for summary in judged_summaries(clusters, plans, expired, namespace, now):
        if attention is None or summary.attention == attention:
            result.append(summary)
    return sorted(result, key=lambda s: (s.cluster, s.namespace, s.kind, s.name))


# Plain values, not model instances: a cluster of thousands of workloads is read on every page view.
SUMMARY_FIELDS = (
    "workload_id", "cluster_id", "namespace", "kind", "name", "pods", "modes", "split", "stale_sources", "stale_since",
    "expires_at",
)  # fmt: skip


def stored_summary(values: tuple, cluster_names: dict[int, str]) -> WorkloadSummary:
    workload_id, cluster_id, ns, kind, name, pods, modes, split, stale_sources, stale_since, expires_at = values
    return WorkloadSummary(
        workload_id, cluster_names[cluster_id], ns, kind, name, {**dict.fromkeys(VERDICT_ORDER, 0), **pods}, modes,
        split, stale_sources, stale_since, expires_at,
    )  # fmt: skip


def judged_summaries(
    clusters: Iterable[Cluster],
    plans: dict[int, Plan],
    expired: dict[int, list[int]],
    namespace: str | None,
    now: datetime,
) -> list[WorkloadSummary]:
    """Judged now, in memory (a GET writes nothing): the expired workloads of clusters whose stored verdicts hold,
    and the whole of those whose stored verdicts do not."""
    result = []
    for each in clusters:
        if plans[each.pk].valid and not expired.get(each.pk):
            continue
        ids = None if not plans[each.pk].valid else expired[each.pk]
        judgement = judge_cluster(each, now, workload_ids=ids)
        rows = [(row, expires) for row, expires in judgement.rows if not namespace or row.namespace == namespace]
        result += summarise((row for row, _ in rows), {row.consumption_id: e for row, e in rows})
    return result


def rows(
    cluster: Cluster,
    namespace: str | None = None,
    workload_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> list[DriftRow]:
    """Stored rows of one cluster (optionally one namespace or some workloads), those expired judged again;
    ordered as drift.verdicts.drift_rows orders them."""
    return [row for row, _ in rows_with_expiry(cluster, namespace, workload_ids, now)]


# StoredVerdict field -> the value DriftRow needs.
_ROW_FIELDS = (
    "consumption_id", "verdict", "evidence", "reason", "running_version", "current_version", "stale_since", "split",
    "observed_at", "expires_at", "workload_id", "pod_id", "consumption__container__pod__namespace",
    "consumption__container__pod__name", "consumption__container__name", "consumption__container__init",
    "consumption__container__started_at", "consumption__container__pod__workload__kind",
    "consumption__container__pod__workload__name", "consumption__source_kind", "consumption__source_name",
    "consumption__mode", "consumption__optional", "consumption__mount_path",
)  # fmt: skip


def rows_with_expiry(
    cluster: Cluster,
    namespace: str | None = None,
    workload_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> list[tuple[DriftRow, datetime | None]]:
    """``rows``, each with the moment its verdict expires (None: only new facts change it)."""
    chosen = None if workload_ids is None else {cluster.pk: workload_ids}
    return clusters_rows_with_expiry([cluster], namespace, chosen, now)[cluster.pk]


def clusters_rows(
    clusters: Collection[Cluster],
    namespace: str | None = None,
    workload_ids: Mapping[int, Collection[int]] | None = None,
    now: datetime | None = None,
) -> dict[int, list[DriftRow]]:
    """``rows`` of each cluster (by id; ``workload_ids`` by cluster id, a cluster left out has none), in the same
    queries however many clusters there are (the overview's search)."""
    found = clusters_rows_with_expiry(clusters, namespace, workload_ids, now)
    return {pk: [row for row, _ in pairs] for pk, pairs in found.items()}


def clusters_rows_with_expiry(
    clusters: Collection[Cluster],
    namespace: str | None = None,
    workload_ids: Mapping[int, Collection[int]] | None = None,
    now: datetime | None = None,
) -> dict[int, list[tuple[DriftRow, datetime | None]]]:
    now = now or timezone.now()
    plans = read_plans(clusters, now)
    result: dict[int, list[tuple[DriftRow, datetime | None]]] = {c.pk: [] for c in clusters}
    valid = [c for c in clusters if plans[c.pk].valid]
    for cluster in clusters:
        if not plans[cluster.pk].valid:
            ids = None if workload_ids is None else workload_ids.get(cluster.pk, [])
            result[cluster.pk] = _judged_now(cluster, namespace, ids, now)
    if not valid:
        return result
    # Only rows of consumptions still live: a container that ended, or a pod being deleted, after the last judgement
    # is not shown.
    stored = StoredVerdict.objects.filter(
        cluster__in=[c.pk for c in valid],
        consumption__container__ended_at=None,
        consumption__container__pod__deleted_at=None,
        consumption__container__pod__terminating_since=None,
    )
    if namespace:
        stored = stored.filter(consumption__container__pod__namespace=namespace)
    if workload_ids is not None:
        stored = stored.filter(workload_id__in=[i for c in valid for i in workload_ids.get(c.pk, [])])
    names = {c.pk: c.name for c in valid}
    expired: dict[int, set[int]] = defaultdict(set)
    for cluster_id, *values in stored.values_list("cluster_id", *_ROW_FIELDS):
        v = dict(zip(_ROW_FIELDS, values, strict=True))
        if v["expires_at"] is not None and v["expires_at"] <= now:
            expired[cluster_id].add(v["workload_id"])
            continue
        row = DriftRow(
            cluster=names[cluster_id], namespace=v["consumption__container__pod__namespace"],
            pod=v["consumption__container__pod__name"], container=v["consumption__container__name"],
            init_container=v["consumption__container__init"],
            workload=WorkloadRef(v["consumption__container__pod__workload__kind"],
                                 v["consumption__container__pod__workload__name"]),
            source=SourceRef(v["consumption__source_kind"], v["consumption__source_name"]),
            mode=Mode(v["consumption__mode"]), verdict=Verdict(v["verdict"]), evidence=Evidence(v["evidence"]),
            reason=v["reason"], running_version=v["running_version"] or None,
            current_version=v["current_version"] or None, stale_since=v["stale_since"],
            optional=v["consumption__optional"], split=v["split"], observed_at=v["observed_at"],
            container_started_at=v["consumption__container__started_at"],
            mount_path=v["consumption__mount_path"], consumption_id=v["consumption_id"],
            workload_id=v["workload_id"], pod_id=v["pod_id"],
        )  # fmt: skip
        result[cluster_id].append((row, v["expires_at"]))
    for cluster in valid:
        gone = expired[cluster.pk]
        pairs = [(row, e) for row, e in result[cluster.pk] if row.workload_id not in gone]
        if gone:
            pairs += _judged_now(cluster, namespace, gone, now)
        result[cluster.pk] = sorted(pairs, key=lambda pair: _order(pair[0]))
    return result


def _order(row: DriftRow) -> tuple[str, str, bool, str, int]:
    return (row.namespace, row.pod, row.init_container, row.container, row.consumption_id)


def _judged_now(
    cluster: Cluster, namespace: str | None, workload_ids: Collection[int] | None, now: datetime
) -> list[tuple[DriftRow, datetime | None]]:
    judged = judge_cluster(cluster, now, workload_ids=workload_ids)
    return [(row, expires) for row, expires in judged.rows if not namespace or row.namespace == namespace]


def matching_workloads(cluster: Cluster, namespace: str | None, source: str = "", q: str = "") -> list[int]:
    """Workloads with a live consumption whose source name contains ``source`` and whose workload, pod,
    container, namespace or source name contains ``q`` (case-insensitive): one query."""
    return clusters_matching_workloads([cluster], namespace, source, q).get(cluster.pk, [])


def clusters_matching_workloads(
    clusters: Collection[Cluster], namespace: str | None, source: str = "", q: str = ""
) -> dict[int, list[int]]:
    """``matching_workloads`` of each cluster (by id; one with none is left out), in one query."""
    found = live_consumptions(None, namespace).filter(container__pod__cluster__in=[c.pk for c in clusters])
    if source:
        found = found.filter(source_name__icontains=source)
    if q:
        found = found.filter(
            Q(container__pod__workload__name__icontains=q) | Q(container__pod__name__icontains=q)
            | Q(container__name__icontains=q) | Q(container__pod__namespace__icontains=q)
            | Q(source_name__icontains=q)
        )  # fmt: skip
    result: dict[int, list[int]] = defaultdict(list)
    pairs = found.order_by().values_list("container__pod__cluster_id", "container__pod__workload_id").distinct()
    for cluster_id, workload_id in pairs:
        result[cluster_id].append(workload_id)
    return dict(result)


def cluster_counts(cluster: Cluster, now: datetime | None = None) -> dict[str, int]:
    """Pods per worst verdict in the whole cluster, for the run record and the chart of stale pods: one aggregate
    query over the stored summaries that hold, with expired workloads (or a cluster whose stored verdicts do not
    hold) judged again in memory."""
    return clusters_counts([cluster], now)[cluster.pk]


def clusters_counts(clusters: Collection[Cluster], now: datetime | None = None) -> dict[int, dict[str, int]]:
    """``cluster_counts`` of each cluster (by id), in the same queries however many clusters there are (the
    overview's charts with a namespace filter or a search, which count the whole cluster)."""
    now = now or timezone.now()
    plans = read_plans(clusters, now)
    counts: dict[int, dict[str, int]] = {c.pk: dict.fromkeys(VERDICT_ORDER, 0) for c in clusters}
    stored = WorkloadVerdicts.objects.filter(cluster__in=[c.pk for c in clusters if plans[c.pk].valid])
    added = (
        stored.filter(Q(expires_at=None) | Q(expires_at__gt=now))
        .values("cluster_id")
        .annotate(**{str(verdict): pods_with(verdict) for verdict in VERDICT_ORDER})
        .order_by()
    )
    for counted in added:
        row: dict[str, Any] = dict(counted)  # keys made from the verdicts' names
        for each in VERDICT_ORDER:
            counts[row["cluster_id"]][each] += row[each]
    expired: dict[int, list[int]] = defaultdict(list)
    for cluster_id, workload_id in stored.filter(expires_at__lte=now).values_list("cluster_id", "workload_id"):
        expired[cluster_id].append(workload_id)
    ids = {c.name: c.pk for c in clusters}
    for summary in judged_summaries(clusters, plans, expired, None, now):
        for name, count in summary.pods.items():
            counts[ids[summary.cluster]][name] = counts[ids[summary.cluster]].get(name, 0) + count
    return counts


def pods_with(verdict: str, condition: Q | None = None) -> Coalesce:
    """Pods whose worst verdict is ``verdict``, added up over WorkloadVerdicts rows (their integer column)."""
    return Coalesce(Sum(WorkloadVerdicts.pods_field(verdict), filter=condition), 0)


def stamp(clusters: Iterable[Cluster], now: datetime | None = None) -> str:
    """A version of what the overview shows for these clusters: it changes when a stored verdict changes, a
    snapshot finishes, or a stored verdict expires. Equal stamps: nothing new to show."""
    now = now or timezone.now()
    ids = [c.pk for c in clusters]
    parts = []
    records = {r.pk: r for r in ClusterVerdicts.objects.filter(cluster__in=ids)}
    # The latest expiry passed: changes each time another stored verdict expires (and is judged on reading).
    last_expired = dict(
        WorkloadVerdicts.objects.filter(cluster__in=ids, expires_at__lte=now)
        .values("cluster_id")
        .annotate(latest=Max("expires_at"))
        .values_list("cluster_id", "latest")
    )
    latest_runs = dict(
        SnapshotRun.objects.filter(cluster__in=ids)
        .exclude(status=SnapshotRun.Status.RUNNING)
        .order_by("cluster_id", "-started_at", "-id")
        .distinct("cluster_id")
        .values_list("cluster_id", "id")
    )
    for pk in sorted(ids):
        record = records.get(pk)
        if record is None or (record.expires_at is not None and record.expires_at <= now):
            return ""  # judged at read time: no stamp
        expiry = last_expired.get(pk)
        expired = expiry.timestamp() if expiry is not None else 0
        parts.append(f"{pk}.{record.stamp}.{latest_runs.get(pk, 0)}.{expired}")
    return "-".join(parts)


def as_of(clusters: Iterable[Cluster], now: datetime | None = None) -> dict[int, datetime]:
    """Per cluster (by id), the moment its stored verdicts are as of: the latest of their whole judgement, any
    stored summary written since (a watcher's version, a rollout's pods) and the last good snapshot, which
    confirmed the stored verdicts even when it changed none. A cluster whose stored verdicts do not hold is
    judged when read: as of now. One query."""
    now = now or timezone.now()
    ids = [c.pk for c in clusters]
    # The latest by the (cluster, judged_at) index, one entry per cluster (a MAX per cluster read every summary).
    latest_summary = WorkloadVerdicts.objects.filter(cluster=OuterRef("pk")).order_by("-judged_at")
    good = SnapshotRun.objects.filter(
        cluster=OuterRef("pk"), status__in=[SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL]
    )
    records = ClusterVerdicts.objects.filter(cluster__in=ids).annotate(
        summary_at=Subquery(latest_summary.values("judged_at")[:1]),
        good_at=Subquery(good.order_by("-finished_at").values("finished_at")[:1]),
    )
    result = dict.fromkeys(ids, now)
    for record in records:
        if record.expires_at is not None and record.expires_at <= now:
            continue  # judged when read
        moments = [record.judged_at, record.summary_at, record.good_at]
        result[record.pk] = min(now, max(moment for moment in moments if moment is not None))
    return result


def clusters_named(cluster: Cluster | str | None) -> list[Cluster]:
    if isinstance(cluster, Cluster):
        return [cluster]
    if cluster:
        return list(Cluster.objects.filter(name=cluster))
    return list(Cluster.objects.all())


@dataclass
class GaugeTotals:
    """What `/metrics` exports of the verdicts, added up: stale pods per (cluster, namespace, workload kind,
    workload, mode), the oldest stale moment per (cluster, namespace, kind, workload), and pods per worst verdict
    per cluster. Kind and workload are "" for clusters that export per namespace only."""

    stale: dict[tuple[str, str, str, str, str], int]
    oldest: dict[tuple[str, str, str, str], datetime]
    pods: dict[str, dict[str, int]]

    def add(self, summary: WorkloadSummary, per_workload: bool) -> None:
        kind, name = (summary.kind, summary.name) if per_workload else ("", "")
        key = (summary.cluster, summary.namespace, kind, name)
        for mode, count in summary.stale_pods_by_mode.items():
            self.stale[(*key, mode)] = self.stale.get((*key, mode), 0) + count
        self._older(key, summary.stale_since)
        for verdict, count in summary.pods.items():
            self.pods[summary.cluster][verdict] = self.pods[summary.cluster].get(verdict, 0) + count

    def _older(self, key: tuple[str, str, str, str], started: datetime | None) -> None:
        if started is not None and (key not in self.oldest or started < self.oldest[key]):
            self.oldest[key] = started


def gauge_totals(clusters: list[Cluster], now: datetime | None = None) -> GaugeTotals:
    """``GaugeTotals`` of these clusters, as adding up ``workload_summaries`` gives them, but added up by the
    database (GROUP BY cluster, namespace and, where the cluster exports per workload, the workload): a scrape of
    50,000 pods reads a row per workload or namespace, not thousands of decoded summaries. Expired workloads, and
    clusters whose stored verdicts do not hold, are judged in memory and added in. Two queries, plus the judging."""
    now = now or timezone.now()
    plans = read_plans(clusters, now)
    names = {c.pk: c.name for c in clusters}
    per_workload = {c.pk for c in clusters if c.metrics_per_workload}
    totals = GaugeTotals({}, {}, {c.name: dict.fromkeys(VERDICT_ORDER, 0) for c in clusters})
    stored = WorkloadVerdicts.objects.filter(cluster__in=[c.pk for c in clusters if plans[c.pk].valid])
    detailed = Q(cluster__in=per_workload)
    grouped = (
        stored.filter(Q(expires_at=None) | Q(expires_at__gt=now))
        .annotate(
            kind_label=Case(When(detailed, then=F("kind")), default=Value("")),
            name_label=Case(When(detailed, then=F("name")), default=Value("")),
        )
        .values("cluster_id", "namespace", "kind_label", "name_label")
        .annotate(
            since=Min("stale_since"),
            **{f"mode_{mode}": _stale_through(mode) for mode in Mode},
            **{f"pods_{verdict}": pods_with(verdict) for verdict in VERDICT_ORDER},
        )
        .order_by()
    )
    # Column names spelled once, not per row: a scrape of 50,000 pods goes through thousands of rows.
    modes = [(f"mode_{mode}", mode.value) for mode in Mode]
    pods = [(f"pods_{verdict}", str(verdict)) for verdict in VERDICT_ORDER]
    for grouped_row in grouped:
        row: dict[str, Any] = dict(grouped_row)  # keys made from the modes' and verdicts' names
        cluster = names[row["cluster_id"]]
        key = (cluster, row["namespace"], row["kind_label"], row["name_label"])
        for column, mode in modes:
            if row[column] is not None:
                totals.stale[(*key, mode)] = totals.stale.get((*key, mode), 0) + row[column]
        totals._older(key, row["since"])
        by_verdict = totals.pods[cluster]
        for column, verdict in pods:
            by_verdict[verdict] += row[column]
    expired: dict[int, list[int]] = defaultdict(list)
    for cluster_id, workload_id in stored.filter(expires_at__lte=now).values_list("cluster_id", "workload_id"):
        expired[cluster_id].append(workload_id)
    ids = {c.name: c.pk for c in clusters}
    for summary in judged_summaries(clusters, plans, expired, None, now):
        totals.add(summary, ids[summary.cluster] in per_workload)
    return totals


def _stale_through(mode: Mode) -> Sum:
    """Stale pods through ``mode``, added up over WorkloadVerdicts rows (their ``modes`` JSON); NULL where no
    workload of the group reads through it (no series), as adding up ``stale_pods_by_mode`` gives none."""
    stale = Coalesce(Cast(KT(f"modes__{mode}__{Verdict.STALE}"), IntegerField()), 0)
    return Sum(Case(When(Q(modes__has_key=mode.value), then=stale)))
