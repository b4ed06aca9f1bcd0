"""Verdicts from facts: every live consumption, judged by ``rules`` at a given moment, becomes one DriftRow.

This is the one place stored facts meet the rules. ``store`` keeps what it computes, with the moment each
verdict would change on the clock alone, so that ``read`` serves stored verdicts and only re-judges expired ones
through here; nothing else decides a verdict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from drift.models import Cluster, Consumption, Observation, ReloadSetting, SnapshotRun, Source, SourceVersion
from drift.verdicts import measured, refresh, rules
from drift.vocabulary import REFRESHED_MODES, Evidence, Mode, Reload, Verdict


@dataclass(frozen=True)
class SourceRef:
    """A ConfigMap or Secret by kind and name (its namespace is the row's)."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class WorkloadRef:
    """What owns a pod, by kind and name: a Deployment, StatefulSet... or the Pod itself."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class DriftRow:
    """One (pod, container, source reference) and its verdict. `as_json` is driftreport's output."""

    cluster: str
    namespace: str
    pod: str
    container: str
    init_container: bool
    workload: WorkloadRef
    source: SourceRef
    mode: Mode
    verdict: Verdict
    evidence: Evidence
    reason: str
    running_version: str | None
    current_version: str | None
    stale_since: datetime | None
    optional: bool
    split: bool
    observed_at: datetime | None
    container_started_at: datetime | None
    mount_path: str
    consumption_id: int
    workload_id: int
    pod_id: int

    def as_json(self) -> dict[str, Any]:
        # Field by field (dataclasses.asdict deep-copies every value: a report of 15,000 rows took seconds); the
        # refs become {"kind": ..., "name": ...} and the enums stay their string values.
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["workload"] = {"kind": self.workload.kind, "name": self.workload.name}
        data["source"] = {"kind": self.source.kind, "name": self.source.name}
        for key in ("stale_since", "observed_at", "container_started_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass(frozen=True)
class ClusterMoment:
    """The moment verdicts are judged at, and why it is not now when the cluster stopped answering."""

    now: datetime
    failing_since: datetime | None
    error: str
    forbidden_namespaces: frozenset[str]


def cluster_moment(cluster: Cluster, now: datetime, latest: SnapshotRun | bool | None = False) -> ClusterMoment:
    """While the latest snapshots fail, judge at the last good one: no verdict may turn fresh on a clock
    alone when Driftwatch cannot see the cluster. ``latest``: the latest finished run, when the caller has it."""
    if latest is False:
        latest = cluster.runs.exclude(status=SnapshotRun.Status.RUNNING).first()
    assert latest is not True
    if latest is None or latest.status != SnapshotRun.Status.FAILED:
        forbidden = frozenset(latest.forbidden_namespaces) if latest else frozenset()
        return ClusterMoment(now, None, "", forbidden)
    good = cluster.runs.filter(status__in=[SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL]).first()
    first_failure = cluster.runs.filter(status=SnapshotRun.Status.FAILED)
    if good:
        first_failure = first_failure.filter(started_at__gt=good.started_at)
    failing_since = first_failure.order_by("started_at").values_list("started_at", flat=True).first()
    moment = good.finished_at if good and good.finished_at else now
    forbidden = frozenset(good.forbidden_namespaces) if good else frozenset()
    return ClusterMoment(min(moment, now), failing_since, latest.error, forbidden)


def live_consumptions(
    cluster: Cluster | None = None,
    namespace: str | None = None,
    workload_id: int | None = None,
    workload_ids: Collection[int] | None = None,
) -> QuerySet[Consumption]:
    queryset = Consumption.objects.filter(
        container__ended_at=None, container__pod__deleted_at=None, container__pod__terminating_since=None
    ).select_related("container__pod__workload", "container__pod__cluster")
    if cluster is not None:
        queryset = queryset.filter(container__pod__cluster=cluster)
    if namespace:
        queryset = queryset.filter(container__pod__namespace=namespace)
    if workload_id is not None:
        queryset = queryset.filter(container__pod__workload_id=workload_id)
    if workload_ids is not None:
        queryset = queryset.filter(container__pod__workload_id__in=list(workload_ids))
    return queryset.order_by(
        "container__pod__namespace", "container__pod__name", "container__init", "container__name", "id"
    )


def drift_rows(
    cluster: Cluster | None = None,
    namespace: str | None = None,
    workload_id: int | None = None,
    now: datetime | None = None,
) -> list[DriftRow]:
    """One row per (pod, container, source reference) still running, judged now."""
    now = now or timezone.now()
    clusters = [cluster] if cluster is not None else list(Cluster.objects.all())
    rows: list[DriftRow] = []
    for each in clusters:
        judged = _cluster_rows(each, namespace, [workload_id] if workload_id is not None else None, now)
        rows.extend(row for row, _ in judged.rows)
    return rows


@dataclass(frozen=True)
class ClusterJudgement:
    """One cluster's rows with the moment each would change on the clock alone (None: only new facts change
    it), and what they rest on besides the facts (see drift.models.ClusterVerdicts.basis)."""

    rows: list[tuple[DriftRow, datetime | None]]
    basis: str
    basis_expires_at: datetime | None


def judge_cluster(cluster: Cluster, now: datetime, workload_ids: Collection[int] | None = None) -> ClusterJudgement:
    """Judge the live consumptions of a cluster (or of some of its workloads: a split is decided within one
    workload, so a workload is the smallest unit that can be judged alone)."""
    return _cluster_rows(cluster, None, workload_ids, now)


@dataclass(frozen=True, slots=True)
class _Fact:
    """One live consumption with what judging it needs: plain values, no model instances, because an
    overview of thousands of pods must not build tens of thousands of ORM objects."""

    consumption_id: int
    source_kind: str
    source_name: str
    mode: str
    keys: tuple[str, ...]
    optional: bool
    mount_path: str
    container: str
    init: bool
    running: bool
    started_at: datetime | None
    pod_id: int
    pod: str
    namespace: str
    pod_started_at: datetime | None
    workload_id: int
    workload_kind: str
    workload_name: str
    reload_hints: dict[str, str]


# _Fact's attribute -> the field it is read from.
_FACT_FIELDS = {
    "consumption_id": "pk", "source_kind": "source_kind", "source_name": "source_name", "mode": "mode",
    "keys": "keys", "optional": "optional", "mount_path": "mount_path", "container": "container__name",
    "init": "container__init", "running": "container__running", "started_at": "container__started_at",
    "pod_id": "container__pod_id", "pod": "container__pod__name", "namespace": "container__pod__namespace",
    "pod_started_at": "container__pod__started_at", "workload_id": "container__pod__workload_id",
    "workload_kind": "container__pod__workload__kind", "workload_name": "container__pod__workload__name",
    "reload_hints": "container__reload_hints",
}  # fmt: skip


def _facts(cluster: Cluster, namespace: str | None, workload_ids: Collection[int] | None) -> list[_Fact]:
    facts = []
    for row in live_consumptions(cluster, namespace, workload_ids=workload_ids).values_list(*_FACT_FIELDS.values()):
        values = dict(zip(_FACT_FIELDS, row, strict=True))
        values["keys"] = tuple(values["keys"])
        facts.append(_Fact(**values))
    return facts


@dataclass(frozen=True, slots=True)
class _Judged:
    fact: _Fact
    judgement: rules.Judgement
    # The id of the content the container runs, as rules.projection_id names it (None: unknown).
    running_projection: str | None


def _cluster_rows(
    cluster: Cluster, namespace: str | None, workload_ids: Collection[int] | None, now: datetime
) -> ClusterJudgement:
    moment = cluster_moment(cluster, now)
    facts = _facts(cluster, namespace, workload_ids)
    window, window_expires_at = measured.propagation_window_until(cluster, moment.now)
    basis = _basis(moment, window)
    if moment.failing_since is not None:
        window_expires_at = None  # judged at the frozen moment of the last good snapshot: the clock stands still
    if not facts:
        return ClusterJudgement([], basis, window_expires_at)
    sources = _sources(cluster, {(fact.namespace, fact.source_kind, fact.source_name) for fact in facts})
    probes = latest_probes([fact.consumption_id for fact in facts])
    settings = _reload_settings({fact.workload_id for fact in facts if fact.mode in REFRESHED_MODES})
    judged: list[_Judged] = []
    for fact in facts:
        source = sources.get((fact.namespace, fact.source_kind, fact.source_name)) or rules.Source(
            kind=fact.source_kind, name=fact.source_name, exists=False, versions=()
        )
        consumer = rules.Consumer(mode=Mode(fact.mode), keys=fact.keys, optional=fact.optional)
        container = rules.Container(
            name=fact.container,
            init=fact.init,
            running=fact.running,
            started_at=fact.started_at,
            pod_started_at=fact.pod_started_at,
            reload=_reload_facts(cluster, fact, settings),
        )
        judgement = rules.judge(consumer, container, source, probes.get(fact.consumption_id), moment.now, window)
        judgement = _qualified(judgement, moment, fact.namespace)
        judged.append(_Judged(fact, judgement, _running_projection(consumer, source, judgement)))

    split = _split_pairs(judged)
    return ClusterJudgement(
        [(_row(cluster, each, split, probes), each.judgement.changes_at) for each in judged], basis, window_expires_at
    )


def _reload_settings(workload_ids: set[int]) -> dict[tuple[int, str], tuple[str, str, datetime]]:
    """(workload id, container or "") -> (hot|restart, who set it, when), for the workloads with a volume."""
    if not workload_ids:
        return {}
    rows = ReloadSetting.objects.filter(workload_id__in=workload_ids).values_list(
        "workload_id", "container", "reload", "set_by", "set_at"
    )
    return {(workload_id, container): (how, by, at) for workload_id, container, how, by, at in rows}


def _reload_facts(
    cluster: Cluster, fact: _Fact, settings: dict[tuple[int, str], tuple[str, str, datetime]]
) -> rules.ReloadFacts:
    """What is said of this container's processes re-reading a file: an operator's setting on the workload (for
    the container, then for every container) wins over the pod's annotation; then the pod's hints."""
    return reload_facts(cluster, fact.reload_hints, fact.workload_id, fact.container, settings)


def reload_facts(
    cluster: Cluster,
    hints: dict[str, str] | None,
    workload_id: int,
    container: str,
    settings: dict[tuple[int, str], tuple[str, str, datetime]],
) -> rules.ReloadFacts:
    """``_reload_facts`` from plain values: a container's reload hints, its workload and name."""
    hints = hints or {}
    declared = Reload(hints["declared"]) if hints.get("declared") in (Reload.HOT, Reload.RESTART) else Reload.UNKNOWN
    declared_by = hints.get("declared_by", "")
    setting = settings.get((workload_id, container)) or settings.get((workload_id, ""))
    if setting is not None:
        how, by, at = setting
        declared = Reload(how)
        declared_by = f"{by} on the workload page ({timezone.localtime(at):%Y-%m-%d %H:%M})"
    return rules.ReloadFacts(
        declared=declared,
        declared_by=declared_by,
        sidecar=hints.get("sidecar", ""),
        restart_tool=hints.get("restart_tool", ""),
        cluster_default=Reload(cluster.reload_default),
    )


def _basis(moment: ClusterMoment, window: timedelta) -> str:
    """What verdicts rest on besides the facts, as text: when it differs, every verdict is judged again."""
    frozen = (
        f"failing since {moment.failing_since.isoformat()}, judged at {moment.now.isoformat()}; "
        if (moment.failing_since is not None)
        else ""
    )
    forbidden = ",".join(sorted(moment.forbidden_namespaces))
    return f"{frozen}window {window.total_seconds()}s; forbidden [{forbidden}]"[:1024]


def _row(
    cluster: Cluster, judged: _Judged, split: set[tuple[int, str, str]], probes: dict[int, rules.Probe]
) -> DriftRow:
    fact, judgement = judged.fact, judged.judgement
    probe = probes.get(fact.consumption_id)
    return DriftRow(
        cluster=cluster.name,
        namespace=fact.namespace,
        pod=fact.pod,
        container=fact.container,
        init_container=fact.init,
        workload=WorkloadRef(fact.workload_kind, fact.workload_name),
        source=SourceRef(fact.source_kind, fact.source_name),
        mode=Mode(fact.mode),
        verdict=judgement.verdict,
        evidence=judgement.evidence,
        reason=judgement.reason,
        running_version=judgement.running_version,
        current_version=judgement.current_version,
        stale_since=judgement.stale_since,
        optional=fact.optional,
        split=(fact.workload_id, fact.source_kind, fact.source_name) in split,
        observed_at=probe.observed_at if probe else None,
        container_started_at=fact.started_at,
        mount_path=fact.mount_path,
        consumption_id=fact.consumption_id,
        workload_id=fact.workload_id,
        pod_id=fact.pod_id,
    )


def _qualified(judgement: rules.Judgement, moment: ClusterMoment, namespace: str) -> rules.Judgement:
    """What the rules cannot know: a namespace we may not read, a cluster that stopped answering."""
    if namespace in moment.forbidden_namespaces:
        return rules.Judgement(
            verdict=Verdict.UNKNOWN,
            evidence=Evidence.INFERRED,
            reason=f"namespace {namespace} is forbidden to Driftwatch (RBAC); last known: {judgement.verdict}",
            running_version=judgement.running_version,
            current_version=judgement.current_version,
            stale_since=None,
            optional=judgement.optional,
            changes_at=None,
        )
    if moment.failing_since is not None:
        since = timezone.localtime(moment.failing_since).strftime("%Y-%m-%d %H:%M:%S")
        return rules.Judgement(
            verdict=judgement.verdict,
            evidence=judgement.evidence,
            reason=f"as of the last good snapshot (cluster unreachable since {since}): {judgement.reason}",
            running_version=judgement.running_version,
            current_version=judgement.current_version,
            stale_since=judgement.stale_since,
            optional=judgement.optional,
            changes_at=None,  # the moment judged at stays the last good snapshot's until one succeeds
        )
    return judgement


def _running_projection(consumer: rules.Consumer, source: rules.Source, judgement: rules.Judgement) -> str | None:
    if judgement.running_version is None:
        return None
    for version in source.versions:
        if version.resource_version == judgement.running_version:
            return rules.projection_id(consumer, version)
    return None


def _split_pairs(judged: Iterable[_Judged]) -> set[tuple[int, str, str]]:
    """(workload id, source kind, source name) of the sources whose pods of one workload run different contents."""
    by_workload: dict[int, list[tuple[str, str, str, str | None]]] = defaultdict(list)
    for each in judged:
        fact = each.fact
        by_workload[fact.workload_id].append((fact.pod, fact.source_kind, fact.source_name, each.running_projection))
    return {
        (workload_id, kind, name)
        for workload_id, rows in by_workload.items()
        for kind, name in rules.split_sources(rows)
    }


def _sources(cluster: Cluster, wanted: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], rules.Source]:
    """Every lineage of each wanted (namespace, kind, name), oldest first, as rules.Source."""
    namespaces = {namespace for namespace, _, _ in wanted}
    lineages: dict[tuple[str, str, str], list[Source]] = defaultdict(list)
    for source in Source.objects.filter(cluster=cluster, namespace__in=namespaces).order_by("first_seen", "id"):
        key = (source.namespace, source.kind, source.name)
        if key in wanted:
            lineages[key].append(source)
    versions: dict[int, list[SourceVersion]] = defaultdict(list)
    source_ids = [source.pk for group in lineages.values() for source in group]
    for version in SourceVersion.objects.filter(source_id__in=source_ids).defer("data").order_by("first_seen", "id"):
        versions[version.source_id].append(version)
    result: dict[tuple[str, str, str], rules.Source] = {}
    for key, group in lineages.items():
        ordered = [
            rules.SourceVersion(
                resource_version=version.resource_version,
                key_hashes=version.key_hashes,
                changed_at=version.appeared_at(previous.first_seen if previous else None),
                uid=source.uid,
                deleted_at=source.deleted_at,
            )
            for source in group
            for previous, version in _with_previous(versions[source.pk])
        ]
        # Numbered oldest first across lineages, as drift.history numbers them: the #N pages name a version by.
        ordered = [replace(version, number=number) for number, version in enumerate(ordered, start=1)]
        current = group[-1]
        result[key] = rules.Source(
            kind=key[1],
            name=key[2],
            exists=current.deleted_at is None,
            versions=tuple(ordered),
            immutable=current.immutable,
            watched_since=group[0].first_seen,
        )
    return result


def _with_previous(versions: list[SourceVersion]) -> list[tuple[SourceVersion | None, SourceVersion]]:
    return list(zip([None, *versions[:-1]], versions, strict=True))


def latest_probes(consumption_ids: list[int], at: datetime | None = None) -> dict[int, rules.Probe]:
    """The last read of each consumption (at or before `at`, when given: point in time)."""
    observations = Observation.objects.filter(
        # The ids as one array parameter: Django compiles an IN list of 15,000 placeholders in over a second.
        consumption_id__in=RawSQL("SELECT unnest(%s::bigint[])", (consumption_ids,))
    )
    if at is not None:
        observations = observations.filter(observed_at__lte=at)
    latest = (
        observations.latest_per_consumption()
        .values_list(
            "consumption_id", "observed_at", "ok", "reason", "key_hashes", "volume_written_at", "watching",
            "holds_earlier_file",
        )
    )  # fmt: skip
    return {
        consumption_id: rules.Probe(
            observed_at=observed_at,
            ok=ok,
            reason=reason,
            key_hashes=key_hashes,
            volume_written_at=written_at,
            watching=watching,
            holds_earlier_file=holds,
        )
        for consumption_id, observed_at, ok, reason, key_hashes, written_at, watching, holds in latest
    }


def edit_outcomes(
    cluster: Cluster, namespace: str, kind: str, name: str, rows: Iterable[DriftRow], now: datetime
) -> dict[int, rules.EditOutcome]:
    """What an edit of one source would do to each of its consumers now (rules.edit_effect), by consumption id:
    the source's immutability, each container's reload facts and last probe's file watch, this cluster's
    measured refresh delays. Bounded: one query each for the source, the containers' hints, the reload settings,
    the last probes, and the measured delays (two)."""
    rows = list(rows)
    if not rows:
        return {}
    lineage = (
        Source.objects.filter(cluster=cluster, namespace=namespace, kind=kind, name=name)
        .order_by("first_seen", "id")
        .last()
    )
    source = rules.Source(kind, name, exists=lineage is not None and lineage.deleted_at is None, versions=(),
                          immutable=bool(lineage and lineage.immutable))  # fmt: skip
    ids = [row.consumption_id for row in rows]
    hints = dict(Consumption.objects.filter(pk__in=ids).values_list("pk", "container__reload_hints"))
    settings = _reload_settings({row.workload_id for row in rows if row.mode in REFRESHED_MODES})
    probes = latest_probes([row.consumption_id for row in rows if row.mode in REFRESHED_MODES])
    delays = measured.refresh_delays(cluster, now)
    window = refresh.effective_window(delays.seconds, timedelta(seconds=cluster.propagation_window_seconds))
    median = delays.median if delays.count else None
    found = {}
    for row in rows:
        probe = probes.get(row.consumption_id)
        found[row.consumption_id] = rules.edit_effect(
            source,
            rules.Consumer(mode=row.mode, optional=row.optional),
            reload_facts(cluster, hints.get(row.consumption_id), row.workload_id, row.container, settings),
            probe.watching if probe else None,
            median,
            window,
        )
    return found
