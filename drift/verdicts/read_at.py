"""Point in time, the read path: every pod of a cluster (a namespace, a workload) that ran at a moment T, each
container's version of each source it consumed, its verdict at T (``rules.judge`` with T as ``now``) and the
version current at T. Only what is stored answers (``drift.verdicts.at`` decides what it can say); where
Driftwatch did not watch at T the answer says so and lists nothing.

Bounded whatever the number of pods: two queries for the snapshots around T, one for the consumptions with
their containers, pods and workloads, one each for the sources, their versions (without data), the last
probe of each consumption at or before T, the reload settings, and the measured refresh delays (two)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from drift.authorship import describe
from drift.models import Cluster, Consumption, ReloadSetting, SnapshotRun, Source, SourceVersion
from drift.verdicts import at as pit
from drift.verdicts import measured, rules
from drift.verdicts.facts import (
    _FACT_FIELDS,
    ClusterMoment,
    DriftRow,
    _Fact,
    _Judged,
    _qualified,
    _reload_facts,
    _row,
    _running_projection,
    _split_pairs,
    latest_probes,
)
from drift.vocabulary import Evidence, Mode, Verdict

GOOD_RUNS = (SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL)


@dataclass(frozen=True)
class VersionAt:
    """A version as point in time names it: its number in the source's history (as the source page counts), its
    id (for links), when it appeared and who wrote it."""

    id: int
    number: int
    resource_version: str
    changed_at: datetime
    author: str

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.number,
            "id": self.id,
            "resource_version": self.resource_version,
            "changed_at": self.changed_at.isoformat(),
            "author": self.author,
        }


@dataclass(frozen=True)
class RowAt:
    """One (pod, container, source reference) at T. ``presence`` says whether the pod (and this container run)
    certainly ran at T or may have (it vanished between the snapshots around T: verdict unknown)."""

    row: DriftRow
    pod_uid: str
    presence: pit.Presence
    running: VersionAt | None
    current: VersionAt | None

    def as_json(self) -> dict[str, Any]:
        data = self.row.as_json()
        data["pod_uid"] = self.pod_uid
        data["presence"] = str(self.presence)
        data["running"] = self.running.as_json() if self.running else None
        data["current"] = self.current.as_json() if self.current else None
        return data


@dataclass(frozen=True)
class PointInTime:
    cluster: str
    at: datetime
    coverage: pit.Coverage
    rows: list[RowAt]

    @property
    def known(self) -> bool:
        return self.coverage.known

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "at": self.at.isoformat(),
            "known": self.coverage.known,
            "not_known_because": self.coverage.reason or None,
            "rows": [row.as_json() for row in self.rows],
        }


def _run(row: SnapshotRun | None) -> pit.Run | None:
    if row is None or row.finished_at is None:
        return None
    return pit.Run(row.started_at, row.finished_at, frozenset(row.forbidden_namespaces))


def coverage_at(cluster: Cluster, at: datetime, now: datetime) -> pit.Coverage:
    runs = SnapshotRun.objects.filter(cluster=cluster, status__in=GOOD_RUNS, finished_at__isnull=False)
    before = runs.filter(started_at__lte=at).order_by("-started_at").first()
    after = runs.filter(started_at__gt=at).order_by("started_at").first()
    return pit.coverage(at, _run(before), _run(after), now, pit.allowed_gap(cluster.snapshot_interval_seconds))


def point_in_time(
    cluster: Cluster,
    at: datetime,
    namespace: str | Collection[str] | None = None,
    workload_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> PointInTime:
    """What ran in ``cluster`` (one ``namespace`` or some, some workloads) at ``at``, judged at ``at``."""
    now = now or timezone.now()
    covered = coverage_at(cluster, at, now)
    if not covered.known:
        return PointInTime(cluster.name, at, covered, [])
    facts = _facts_at(cluster, at, namespace, workload_ids, covered.after)
    if not facts:
        return PointInTime(cluster.name, at, covered, [])
    window, _ = measured.propagation_window_until(cluster, at)
    moment = ClusterMoment(at, None, "", covered.forbidden_namespaces)
    sources, numbered = _sources_at(
        cluster, {(f.fact.namespace, f.fact.source_kind, f.fact.source_name) for f in facts}
    )
    probes = latest_probes([f.fact.consumption_id for f in facts], at)
    settings = _reload_settings_at({f.fact.workload_id for f in facts}, at)
    judged: list[tuple[_Judged, _FactAt]] = []
    cut: dict[tuple[str, str, str], rules.Source] = {}
    for each in facts:
        fact = each.fact
        key = (fact.namespace, fact.source_kind, fact.source_name)
        source = cut.get(key)
        if source is None:  # each source cut at T once, not once per consumer
            known = sources.get(key) or rules.Source(fact.source_kind, fact.source_name, exists=False, versions=())
            source = cut[key] = pit.source_at(known, at)
        consumer = rules.Consumer(mode=Mode(fact.mode), keys=fact.keys, optional=fact.optional)
        container = rules.Container(
            name=fact.container,
            init=fact.init,
            running=fact.running,
            started_at=fact.started_at,
            pod_started_at=fact.pod_started_at,
            reload=_reload_facts(cluster, fact, settings),
        )
        if each.presence == pit.Presence.NOT_KNOWN:
            judgement = rules.Judgement(
                verdict=Verdict.UNKNOWN,
                evidence=Evidence.INFERRED,
                reason="not known whether this pod still ran then: it was gone by the next snapshot",
                running_version=None,
                current_version=source.versions[-1].resource_version if source.exists else None,
                stale_since=None,
                optional=fact.optional,
            )
        else:
            judgement = rules.judge(consumer, container, source, probes.get(fact.consumption_id), at, window)
            judgement = _qualified(judgement, moment, fact.namespace)
        judged.append((_Judged(fact, judgement, _running_projection(consumer, source, judgement)), each))
    split = _split_pairs(one for one, _ in judged)
    rows = []
    for one, each in judged:
        row = _row(cluster, one, split, probes)
        names = numbered.get((one.fact.namespace, one.fact.source_kind, one.fact.source_name), {})
        rows.append(
            RowAt(
                row=row,
                pod_uid=each.pod_uid,
                presence=each.presence,
                running=names.get(row.running_version or ""),
                current=names.get(row.current_version or ""),
            )
        )
    return PointInTime(cluster.name, at, covered, rows)


@dataclass(frozen=True, slots=True)
class _FactAt:
    fact: _Fact
    pod_uid: str
    presence: pit.Presence
    container_seen: datetime


# What deciding presence at T needs besides _Fact's own fields (facts._FACT_FIELDS).
_EXTRA = ("container__first_seen", "container__ended_at", "container__pod__first_seen", "container__pod__deleted_at",
          "container__pod__uid")  # fmt: skip


def _facts_at(
    cluster: Cluster,
    at: datetime,
    namespace: str | Collection[str] | None,
    workload_ids: Collection[int] | None,
    after: pit.Run | None,
) -> list[_FactAt]:
    """The consumptions of every container run that had started by T in a pod that had started by T and was not
    known gone by T; then, per pod and container name, only the run that was the latest to start by T."""
    pod_started = Q(container__pod__started_at__lte=at) | Q(
        container__pod__started_at=None, container__pod__first_seen__lte=at
    )
    container_started = Q(container__started_at__lte=at) | Q(container__started_at=None, container__first_seen__lte=at)
    queryset = Consumption.objects.filter(
        pod_started,
        container_started,
        Q(container__pod__deleted_at=None) | Q(container__pod__deleted_at__gt=at),
        Q(container__ended_at=None) | Q(container__ended_at__gt=at),
        container__pod__cluster=cluster,
    )
    if isinstance(namespace, str) and namespace:
        queryset = queryset.filter(container__pod__namespace=namespace)
    elif namespace is not None and not isinstance(namespace, str):
        queryset = queryset.filter(container__pod__namespace__in=list(namespace))
    if workload_ids is not None:
        queryset = queryset.filter(container__pod__workload_id__in=list(workload_ids))
    ordered = queryset.order_by(
        "container__pod__namespace", "container__pod__name", "container__init", "container__name", "id"
    ).values_list(*_FACT_FIELDS.values(), *_EXTRA)
    found: list[_FactAt] = []
    latest_run: dict[tuple[int, str, bool], datetime] = {}
    for row in ordered:
        values = dict(zip(_FACT_FIELDS, row[: len(_FACT_FIELDS)], strict=True))
        container_seen, container_ended, pod_seen, pod_deleted, pod_uid = row[len(_FACT_FIELDS) :]
        values["keys"] = tuple(values["keys"])
        # A run that ended after T was running (or restarting) until then, whatever it does now.
        values["running"] = values["running"] or container_ended is not None
        fact = _Fact(**values)
        pod = pit.presence(at, fact.pod_started_at or pod_seen, pod_deleted, after)
        run = pit.presence(at, fact.started_at or container_seen, container_ended, after)
        presence = pit.Presence.NOT_KNOWN if pit.Presence.NOT_KNOWN in (pod, run) else pit.Presence.RAN
        if pit.Presence.NOT_RAN in (pod, run):
            continue
        start = fact.started_at or container_seen
        key = (fact.pod_id, fact.container, fact.init)
        if key not in latest_run or start > latest_run[key]:
            latest_run[key] = start
        found.append(_FactAt(fact, pod_uid, presence, container_seen))
    # A container restarted before T: its earlier run's end was noticed later, but the later run had started.
    return [
        each for each in found if _start(each) == latest_run[(each.fact.pod_id, each.fact.container, each.fact.init)]
    ]


def _start(each: _FactAt) -> datetime:
    return each.fact.started_at or each.container_seen


def _sources_at(
    cluster: Cluster, wanted: set[tuple[str, str, str]]
) -> tuple[dict[tuple[str, str, str], rules.Source], dict[tuple[str, str, str], dict[str, VersionAt]]]:
    """Every lineage of each wanted (namespace, kind, name), oldest first, as rules.Source (all versions: the
    caller cuts them at T), and each version by resourceVersion as point in time names it."""
    namespaces = {namespace for namespace, _, _ in wanted}
    names = {name for _, _, name in wanted}
    lineages: dict[tuple[str, str, str], list[Source]] = defaultdict(list)
    for source in Source.objects.filter(cluster=cluster, namespace__in=namespaces, name__in=names).order_by(
        "first_seen", "id"
    ):
        key = (source.namespace, source.kind, source.name)
        if key in wanted:
            lineages[key].append(source)
    by_source: dict[int, list[SourceVersion]] = defaultdict(list)
    ids = [source.pk for group in lineages.values() for source in group]
    for version in SourceVersion.objects.filter(source_id__in=ids).defer("data").order_by("first_seen", "id"):
        by_source[version.source_id].append(version)
    result: dict[tuple[str, str, str], rules.Source] = {}
    numbered: dict[tuple[str, str, str], dict[str, VersionAt]] = {}
    for key, group in lineages.items():
        ordered: list[rules.SourceVersion] = []
        named: dict[str, VersionAt] = {}
        everything = sorted((v for source in group for v in by_source[source.pk]), key=lambda v: (v.first_seen, v.pk))
        numbers = {version.pk: number for number, version in enumerate(everything, start=1)}
        for source in group:
            previous: SourceVersion | None = None
            for version in by_source[source.pk]:
                changed_at = version.appeared_at(previous.first_seen if previous else None)
                ordered.append(
                    rules.SourceVersion(
                        resource_version=version.resource_version,
                        key_hashes=version.key_hashes,
                        changed_at=changed_at,
                        uid=source.uid,
                        deleted_at=source.deleted_at,
                    )
                )
                named[version.resource_version] = VersionAt(
                    version.pk,
                    numbers[version.pk],
                    version.resource_version,
                    changed_at,
                    describe(version.changed_by, version.client, version.author_confidence),
                )
                previous = version
        current = group[-1]
        first_version = by_source[group[0].pk][0] if by_source[group[0].pk] else None
        watched_since = group[0].first_seen
        if first_version is not None and first_version.first_seen > watched_since:
            # Retention pruned the first versions: before the oldest kept, the content is not known.
            watched_since = first_version.first_seen
        result[key] = rules.Source(
            kind=key[1],
            name=key[2],
            exists=current.deleted_at is None,
            versions=tuple(ordered),
            immutable=current.immutable,
            watched_since=watched_since,
        )
        numbered[key] = named
    return result, numbered


def _reload_settings_at(workload_ids: set[int], at: datetime) -> dict[tuple[int, str], tuple[str, str, datetime]]:
    """The operators' reload settings made by T. Only the last setting of each container is stored: one changed
    after T hides the one before (the audit log keeps it), and the pod's annotation decides instead."""
    if not workload_ids:
        return {}
    rows = ReloadSetting.objects.filter(workload_id__in=workload_ids, set_at__lte=at).values_list(
        "workload_id", "container", "reload", "set_by", "set_at"
    )
    return {(workload_id, container): (how, by, when) for workload_id, container, how, by, when in rows}
