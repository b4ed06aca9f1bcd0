"""One timeline of a namespace (or one workload of it): config versions with their author and changed keys,
rollouts Driftwatch made, restarts it did not make (`kubectl rollout restart`, Reloader's where its mark on the pod
template is recognised), pod starts and ends, container
terminations with their reason and restart count, and verdict changes, in one list ordered by time; and the
stale pods over the same window, replayed from the verdict changes.

Bounded: one query per kind of entry (each on an index, limited to the page asked for), two for the chart,
whatever the number of pods; a window of at most MAX_WINDOW. Only key names of a version are read, never its
values (a Secret's are never stored anyway)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, JSONField, Min, OuterRef, Q, QuerySet, Subquery

from drift.authorship import describe
from drift.diffs import changed_keys
from drift.models import (
    Cluster,
    Consumption,
    ContainerInstance,
    Pod,
    Rollout,
    SourceVersion,
    VerdictChange,
    Workload,
)
from drift.vocabulary import TimelineKind, Verdict

MAX_WINDOW = timedelta(days=31)
PAGE_SIZE = 100
MAX_PAGE = 100  # past it, narrow the window: a page 101 would read 10,000 rows of each kind
EXPORT_LIMIT = 10_000  # entries in one CSV or JSON export
CHART_LIMIT = 50_000  # verdict changes replayed for the chart; past it the chart is not drawn
# Within one moment, causes before effects.
_ORDER = {kind: position for position, kind in enumerate(TimelineKind)}


@dataclass(frozen=True)
class Scope:
    """Where the timeline reads: one namespace of one cluster, or one workload of it."""

    cluster: Cluster
    namespace: str
    workload: Workload | None = None


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    kinds: frozenset[TimelineKind] = frozenset()  # none: every kind
    source: str = ""  # a ConfigMap's or Secret's name: its versions, and the pods that consume it

    def wants(self, kind: TimelineKind) -> bool:
        if self.source and kind in (TimelineKind.ROLLOUT, TimelineKind.RESTART):
            return False  # a rollout is about a workload, not a source
        return not self.kinds or kind in self.kinds


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: TimelineKind
    key: str  # unique in the timeline ("version-12"): the anchor a link from the audit log points at
    summary: str
    actor: str = ""  # who did it, where known
    workload_kind: str = ""
    workload_name: str = ""
    pod: str = ""
    pod_uid: str = ""
    container: str = ""
    source_kind: str = ""
    source_name: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # names, numbers and reasons: never a value

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind.value,
            "key": self.key,
            "summary": self.summary,
            "actor": self.actor,
            "workload": {"kind": self.workload_kind, "name": self.workload_name} if self.workload_name else None,
            "pod": {"name": self.pod, "uid": self.pod_uid} if self.pod else None,
            "container": self.container or None,
            "source": {"kind": self.source_kind, "name": self.source_name} if self.source_name else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    number: int
    has_next: bool


def timeline(scope: Scope, filters: Filters, page: int = 1, page_size: int | None = None) -> Page:
    """The entries of one page (of PAGE_SIZE unless told), oldest first."""
    page_size = page_size or PAGE_SIZE
    limit = page * page_size + 1
    entries: list[Entry] = []
    for kind, read in _READERS:
        if filters.wants(kind):
            entries.extend(read(scope, filters, limit))
    entries.sort(key=lambda entry: (entry.at, _ORDER[entry.kind], entry.key))
    first = (page - 1) * page_size
    return Page(entries[first : first + page_size], page, len(entries) > first + page_size)


def _window(filters: Filters, field_name: str) -> Q:
    return Q(**{f"{field_name}__gte": filters.start, f"{field_name}__lt": filters.end})


def _consumes(source: str, pod_ref: str = "pk") -> Exists:
    """The pod (``pod_ref`` names it in the outer query) has a container that consumes ``source``."""
    return Exists(Consumption.objects.filter(container__pod_id=OuterRef(pod_ref), source_name=source))


def _pods(scope: Scope, filters: Filters, moment: str) -> QuerySet[Pod]:
    pods = Pod.objects.filter(_window(filters, moment), cluster=scope.cluster, namespace=scope.namespace)
    if scope.workload is not None:
        pods = pods.filter(workload=scope.workload)
    if filters.source:
        pods = pods.filter(_consumes(filters.source))
    return pods


# -- one reader per kind of entry --------------------------------------------------------------------------


def _versions(scope: Scope, filters: Filters, limit: int) -> Iterable[Entry]:
    lineage = {
        "source__cluster": OuterRef("source__cluster"), "source__namespace": OuterRef("source__namespace"),
        "source__kind": OuterRef("source__kind"), "source__name": OuterRef("source__name"),
    }  # fmt: skip
    # Numbered as the source page numbers them (drift.history): by (first_seen, id) across lineages.
    before = SourceVersion.objects.filter(**lineage).filter(
        Q(first_seen__lt=OuterRef("first_seen")) | Q(first_seen=OuterRef("first_seen"), id__lt=OuterRef("id"))
    )
    previous = before.order_by("-first_seen", "-id")
    versions = SourceVersion.objects.filter(
        _window(filters, "first_seen"), source__cluster=scope.cluster, source__namespace=scope.namespace
    )
    if filters.source:
        versions = versions.filter(source__name=filters.source)
    if scope.workload is not None:
        consumed = Consumption.objects.filter(container__pod__workload=scope.workload).values("source_name")
        versions = versions.filter(source__name__in=consumed)
    versions = (
        versions.select_related("source")
        .only(
            "id",
            "first_seen",
            "modified_at",
            "key_hashes",
            "resource_version",
            "client",
            "changed_by",
            "author_confidence",
            "source__kind",
            "source__name",
        )
        .annotate(
            previous_hashes=Subquery(previous.values("key_hashes")[:1], output_field=JSONField()),
            previous_seen=Subquery(previous.values("first_seen")[:1]),
            earlier=Subquery(before.order_by().values("source__name").annotate(n=Count("id")).values("n")[:1]),
        )
        .order_by("first_seen", "id")[:limit]
    )
    for version in versions:
        number = (version.earlier or 0) + 1
        keys = changed_keys(version.previous_hashes or {}, version.key_hashes)
        author = describe(version.changed_by, version.client, version.author_confidence)
        said = "; ".join(f"{what} {', '.join(names)}" for what, names in keys.items() if names)
        verb = "created" if version.previous_seen is None else "changed"
        yield Entry(
            at=version.appeared_at(version.previous_seen),
            kind=TimelineKind.VERSION,
            key=f"version-{version.pk}",
            summary=f"{version.source.kind} {version.source.name} #{number} {verb} by {author}"
            + (f": {said}" if said else ""),
            actor=version.changed_by or version.client_shown,
            source_kind=version.source.kind,
            source_name=version.source.name,
            detail={"version": number, "resource_version": version.resource_version, "author": author, **keys},
        )


def _rollouts(scope: Scope, filters: Filters, limit: int) -> Iterable[Entry]:
    rollouts = Rollout.objects.filter(
        _window(filters, "requested_at"), cluster=scope.cluster, namespace=scope.namespace
    ).exclude(status=Rollout.Status.DRY_RUN)
    if scope.workload is not None:
        rollouts = rollouts.filter(kind=scope.workload.kind, name=scope.workload.name)
    for rollout in rollouts.order_by("requested_at", "id")[:limit]:
        action = "restart of its stale pods" if rollout.action == "evict" else "rollout"
        yield Entry(
            at=rollout.requested_at,
            kind=TimelineKind.ROLLOUT,
            key=f"rollout-{rollout.pk}",
            summary=f"Driftwatch {action} of {rollout.kind} {rollout.name} asked by {rollout.requested_by}: "
            f"{rollout.get_status_display()}",
            actor=rollout.requested_by,
            workload_kind=rollout.kind,
            workload_name=rollout.name,
            detail={
                "rollout": rollout.pk,
                "status": rollout.status,
                "action": rollout.action,
                "reason": rollout.reason,
            },
        )


def _restarts(scope: Scope, filters: Filters, limit: int) -> Iterable[Entry]:
    """`kubectl rollout restart`: every pod of the new template carries its moment; one entry per moment."""
    restarts = (
        _pods(scope, filters, "restarted_at")
        .values("workload__kind", "workload__name", "restarted_at")
        .annotate(pods=Count("id"))
        .order_by("restarted_at", "workload__kind", "workload__name")[:limit]
    )
    for row in restarts:
        kind, name, at = row["workload__kind"], row["workload__name"], row["restarted_at"]
        if at is None:  # never: the window's filter; for the type
            continue
        yield Entry(
            at=at,
            kind=TimelineKind.RESTART,
            key=f"restart-{kind}-{name}-{at.timestamp():.0f}",
            summary=f"kubectl rollout restart of {kind} {name} ({row['pods']} pod{'s' if row['pods'] != 1 else ''} "
            "seen from it; who ran it is not recorded)",
            workload_kind=kind,
            workload_name=name,
            detail={"pods": row["pods"]},
        )


def _reloads(scope: Scope, filters: Filters, limit: int) -> Iterable[Entry]:
    """Reloader's restarts, where its mark on the pod template is recognised (drift.podspec.reloaded_by): one
    entry per restart, at the first start of a pod it made."""
    reloads = (
        _pods(scope, filters, "started_at")
        .exclude(reloaded_by="")
        .values("workload__kind", "workload__name", "reloaded_by")
        .annotate(first=Min("started_at"), pods=Count("id"))
        .order_by("first", "workload__kind", "workload__name")[:limit]
    )
    for row in reloads:
        kind, name, first = row["workload__kind"], row["workload__name"], row["first"]
        if first is None:  # never: the window's filter; for the type
            continue
        trigger = row["reloaded_by"].rsplit(" @", 1)[0]
        yield Entry(
            at=first,
            kind=TimelineKind.RESTART,
            key=f"reload-{kind}-{name}-{first.timestamp():.0f}",
            summary=f"Reloader restarted {kind} {name} after {trigger} changed ({row['pods']} "
            f"pod{'s' if row['pods'] != 1 else ''} seen from it)",
            actor="Reloader",
            workload_kind=kind,
            workload_name=name,
            detail={"pods": row["pods"], "tool": "Reloader", "trigger": trigger},
        )


_POD_FIELDS = ("id", "name", "uid", "node_name", "workload__kind", "workload__name")


def _pod_starts(scope: Scope, filters: Filters, limit: int) -> Iterable[Entry]:
    for pod in (
        _pods(scope, filters, "started_at").order_by("started_at", "id").values(*_POD_FIELDS, "started_at")[:limit]
    ):
        yield _pod_entry(pod, pod["started_at"], TimelineKind.POD_START, f"pod {pod['name']} started")


def _pod_ends(scope: Scope, filters: Filters, limit: int) -> Iterable[Entry]:
    for pod in (
        _pods(scope, filters, "deleted_at").order_by("deleted_at", "id").values(*_POD_FIELDS, "deleted_at")[:limit]
    ):
        yield _pod_entry(pod, pod["deleted_at"], TimelineKind.POD_END, f"pod {pod['name']} gone")


def _pod_entry(pod: dict[str, Any], at: datetime, kind: TimelineKind, summary: str) -> Entry:
    return Entry(
        at=at, kind=kind, key=f"{kind.value}-{pod['id']}", summary=summary + (f" on {pod['node_name']}"
        if pod["node_name"] and kind == TimelineKind.POD_START else ""), workload_kind=pod["workload__kind"],
        workload_name=pod["workload__name"], pod=pod["name"], pod_uid=pod["uid"],
    )  # fmt: skip


def _terminations(scope: Scope, filters: Filters, limit: int) -> Iterable[Entry]:
    runs = ContainerInstance.objects.filter(
        _window(filters, "finished_at"), pod__cluster=scope.cluster, pod__namespace=scope.namespace
    )
    if scope.workload is not None:
        runs = runs.filter(pod__workload=scope.workload)
    if filters.source:
        runs = runs.filter(_consumes(filters.source, "pod_id"))
    fields = ("id", "name", "init", "termination_reason", "exit_code", "finished_at", "restart_count",
              "waiting_reason", "pod__name", "pod__uid", "pod__workload__kind", "pod__workload__name")  # fmt: skip
    for run in runs.order_by("finished_at", "id").values(*fields)[:limit]:
        reason = run["termination_reason"] or "no reason given"
        code = f" (exit code {run['exit_code']})" if run["exit_code"] is not None else ""
        then = f"; then {run['waiting_reason']}" if run["waiting_reason"] else ""
        which = "init container" if run["init"] else "container"
        yield Entry(
            at=run["finished_at"],
            kind=TimelineKind.TERMINATION,
            key=f"termination-{run['id']}",
            summary=f"{which} {run['name']} of pod {run['pod__name']} ended: {reason}{code}, "
            f"{run['restart_count']} restart{'s' if run['restart_count'] != 1 else ''} before it{then}",
            workload_kind=run["pod__workload__kind"],
            workload_name=run["pod__workload__name"],
            pod=run["pod__name"],
            pod_uid=run["pod__uid"],
            container=run["name"],
            detail={
                "reason": run["termination_reason"],
                "exit_code": run["exit_code"],
                "restart_count": run["restart_count"],
                "waiting_reason": run["waiting_reason"],
            },
        )


def _verdict_changes(scope: Scope, filters: Filters) -> QuerySet[VerdictChange]:
    changes = VerdictChange.objects.filter(cluster=scope.cluster, namespace=scope.namespace)
    if scope.workload is not None:
        changes = changes.filter(workload=scope.workload)
    if filters.source:
        changes = changes.filter(consumption__source_name=filters.source)
    return changes


def _verdicts(scope: Scope, filters: Filters, limit: int) -> Iterable[Entry]:
    # A new pod judged fresh and a pod that ended say nothing the pod's own entries do not.
    changes = (
        _verdict_changes(scope, filters)
        .filter(_window(filters, "at"))
        .exclude(new_verdict="")
        .exclude(old_verdict="", new_verdict=Verdict.FRESH)
    )
    fields = ("id", "at", "old_verdict", "new_verdict", "pod__name", "pod__uid", "workload__kind",
              "workload__name", "consumption__container__name", "consumption__source_kind",
              "consumption__source_name", "consumption__mode")  # fmt: skip
    for change in changes.order_by("at", "id").values(*fields)[:limit]:
        source = f"{change['consumption__source_kind']} {change['consumption__source_name']}"
        was = change["old_verdict"] or "not judged"
        yield Entry(
            at=change["at"],
            kind=TimelineKind.VERDICT,
            key=f"verdict-{change['id']}",
            summary=f"{change['pod__name']}/{change['consumption__container__name']} "
            f"({change['consumption__mode']} of {source}): {was} → {change['new_verdict']}",
            workload_kind=change["workload__kind"],
            workload_name=change["workload__name"],
            pod=change["pod__name"],
            pod_uid=change["pod__uid"],
            container=change["consumption__container__name"],
            source_kind=change["consumption__source_kind"],
            source_name=change["consumption__source_name"],
            detail={"from": change["old_verdict"], "to": change["new_verdict"]},
        )


_READERS: list[tuple[TimelineKind, Callable[[Scope, Filters, int], Iterable[Entry]]]] = [
    (TimelineKind.VERSION, _versions),
    (TimelineKind.ROLLOUT, _rollouts),
    (TimelineKind.RESTART, _restarts),
    (TimelineKind.RESTART, _reloads),
    (TimelineKind.POD_START, _pod_starts),
    (TimelineKind.POD_END, _pod_ends),
    (TimelineKind.TERMINATION, _terminations),
    (TimelineKind.VERDICT, _verdicts),
]


# -- the chart -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StalePods:
    """Pods with a stale consumption over the window: (moment, count) at the start and at each change, in time
    order; ``too_many``: more changes than CHART_LIMIT, not drawn."""

    points: list[tuple[datetime, int]]
    too_many: bool = False


def stale_pods(scope: Scope, filters: Filters) -> StalePods:
    """Replays the verdict changes: the verdict of each consumption as it stood at the window's start (the last
    change before it), then every change within it."""
    changes = _verdict_changes(scope, filters)
    stale: dict[int, int] = {}  # consumption -> its pod, while stale
    per_pod: dict[int, int] = {}  # pod -> its stale consumptions

    def judged(consumption: int, pod: int, verdict: str) -> None:
        if verdict == Verdict.STALE and consumption not in stale:
            stale[consumption] = pod
            per_pod[pod] = per_pod.get(pod, 0) + 1
        elif verdict != Verdict.STALE and consumption in stale:
            del stale[consumption]
            per_pod[pod] -= 1
            if not per_pod[pod]:
                del per_pod[pod]

    before = (
        changes.filter(at__lt=filters.start)
        .order_by("consumption_id", "-at", "-id")
        .distinct("consumption_id")
        .values_list("consumption_id", "pod_id", "new_verdict")
    )
    for consumption, pod, verdict in before:
        judged(consumption, pod, verdict)
    during = list(
        changes.filter(_window(filters, "at"))
        .order_by("at", "id")
        .values_list("at", "consumption_id", "pod_id", "new_verdict")[: CHART_LIMIT + 1]
    )
    if len(during) > CHART_LIMIT:
        return StalePods([], too_many=True)
    points = [(filters.start, len(per_pod))]
    for at, consumption, pod, verdict in during:
        judged(consumption, pod, verdict)
        points.append((at, len(per_pod)))
    return StalePods(points)
