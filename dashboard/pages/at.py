"""Point in time as the overview, namespace and workload pages show it with ``?at=``: per cluster, whether
Driftwatch watched then, and every pod that ran (by UID) with what each container ran of each source, the
version current then, and the verdict at T. Read-only; drift.verdicts.read_at does the reading."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.http import HttpRequest
from django.utils import timezone

from dashboard.pages.version_links import SERVICE_ACCOUNT_CA
from drift.models import Cluster
from drift.verdicts import at as pit
from drift.verdicts.read_at import PointInTime, RowAt, VersionAt, point_in_time

SHORTCUTS = ((5, "5 minutes before"), (15, "15 minutes before"), (60, "1 hour before"))
# Pods per page: 5,000 pods of three sources each made a page of 10 MB.
PODS_PER_PAGE = 100


@dataclass(frozen=True)
class Moment:
    """``?at=`` as a request gave it: the moment, or why it is refused (``error``); neither when absent."""

    asked: bool
    at: datetime | None = None
    error: str = ""


def moment_of(request: HttpRequest, now: datetime | None = None) -> Moment:
    if "at" not in request.GET:
        return Moment(False)
    try:
        at = pit.parse_moment(request.GET["at"], now or timezone.now(), timezone.get_current_timezone())
    except ValueError as error:
        return Moment(True, error=str(error))
    return Moment(True, at=at)


def at_query(at: datetime) -> str:
    """``at=...`` for a link, in the server's time zone with its offset (what the picker shows)."""
    return urlencode({"at": timezone.localtime(at).isoformat(timespec="seconds")})


@dataclass
class PodAt:
    uid: str
    name: str
    namespace: str
    workload_kind: str
    workload_name: str
    rows: list[RowAt] = field(default_factory=list)


@dataclass
class SourceAt:
    """One source at T: the version current then, and how many pods ran each version ("40 pods ran #7 (Bob's
    edit), 12 still ran #6"); ``unknown``: pods whose version is not known."""

    namespace: str
    kind: str
    name: str
    current: VersionAt | None
    running: list[tuple[VersionAt, int]]
    unknown: int


@dataclass
class ClusterAt:
    answer: PointInTime
    pods: list[PodAt]  # the page's
    pod_count: int
    verdicts: dict[str, int]  # rows per verdict at T, over every pod
    sources: list[SourceAt]


def _sources_at(rows: list[RowAt]) -> list[SourceAt]:
    found: dict[tuple[str, str, str], SourceAt] = {}
    pods: dict[tuple[str, str, str], dict[int, set[str]]] = {}
    unknown: dict[tuple[str, str, str], set[str]] = {}
    versions: dict[int, VersionAt] = {}
    for each in rows:
        row = each.row
        key = (row.namespace, row.source.kind, row.source.name)
        if key not in found:
            found[key] = SourceAt(*key, current=each.current, running=[], unknown=0)
        if each.running is None:
            unknown.setdefault(key, set()).add(each.pod_uid)
        else:
            versions[each.running.id] = each.running
            pods.setdefault(key, {}).setdefault(each.running.id, set()).add(each.pod_uid)
    for key, source in found.items():
        by_version = pods.get(key, {})
        source.running = sorted(
            ((versions[id_], len(uids)) for id_, uids in by_version.items()), key=lambda item: -item[0].number
        )
        source.unknown = len(unknown.get(key, set()))
    return sorted(found.values(), key=lambda source: (source.namespace, source.kind, source.name))


@dataclass(frozen=True)
class Paged:
    clusters: list[ClusterAt]
    page: int
    pages: int


def clusters_at(
    at: datetime,
    clusters: list[Cluster],
    namespaces: dict[str, Collection[str] | None],
    workload_ids: Collection[int] | None = None,
    page: int = 1,
) -> Paged:
    """``namespaces``: per cluster name, the namespaces to show (None: every one). ``page``: which
    ``PODS_PER_PAGE`` pods, counted across the clusters in order."""
    shown = []
    skip, room, total = (page - 1) * PODS_PER_PAGE, PODS_PER_PAGE, 0
    for cluster in clusters:
        answer = point_in_time(cluster, at, namespaces.get(cluster.name), workload_ids=workload_ids)
        pods: dict[str, PodAt] = {}
        for row in answer.rows:
            if row.row.source.name == SERVICE_ACCOUNT_CA:
                continue  # every pod mounts it through its token volume: noise here as on the other pages
            pod = pods.setdefault(
                row.pod_uid,
                PodAt(row.pod_uid, row.row.pod, row.row.namespace, row.row.workload.kind, row.row.workload.name),
            )
            pod.rows.append(row)
        every = list(pods.values())
        total += len(every)
        mine = every[skip : skip + room]
        skip, room = max(0, skip - len(every)), room - len(mine)
        counts: dict[str, int] = {}
        for row in answer.rows:
            counts[row.row.verdict] = counts.get(row.row.verdict, 0) + 1
        rows = [row for row in answer.rows if row.row.source.name != SERVICE_ACCOUNT_CA]
        shown.append(ClusterAt(answer, mine, len(every), counts, _sources_at(rows)))
    return Paged(shown, page, max(1, -(-total // PODS_PER_PAGE)))


def page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 7 and int(value) > 0 else 1


def shortcuts(at: datetime | None) -> list[tuple[str, str]]:
    """(label, query) of the moments before T (before now when none is shown)."""
    base = at or timezone.now()
    return [(label, at_query(base - timedelta(minutes=minutes))) for minutes, label in SHORTCUTS]


def picker_value(at: datetime | None) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%dT%H:%M:%S") if at else ""
