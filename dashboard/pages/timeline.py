"""The timeline page of a namespace or a workload (drift.timeline reads it): its window and filters as a request
gives them, refused with the reason when bad; each entry's links (point in time at its moment, the audit log); the
stale-pods chart as the overview draws it; and the CSV and JSON exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from dashboard.pages.at import at_query, page_number
from dashboard.pages.overview import StaleSeries
from drift import kube
from drift import timeline as tl
from drift.models import Cluster, Workload
from drift.verdicts import at as pit
from drift.vocabulary import TimelineKind

DEFAULT_WINDOW = timedelta(hours=6)
# `?at=T` (a link from the audit log): the hour around T.
AROUND = timedelta(minutes=30)
FORMATS = ("", "html", "csv", "json")
CHART_BUCKETS = 200
CSV_COLUMNS = ["at", "kind", "summary", "actor", "workload", "pod", "pod_uid", "container", "source", "detail"]
# A cell starting with one of these is a formula to a spreadsheet; prefixing a quote keeps it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Asked:
    """What a request asks of the timeline: the filters, or the reasons they are refused (``errors``)."""

    filters: tl.Filters | None
    errors: list[str]
    page: int
    format: str
    workload: str  # the namespace page's workload filter, as "Kind/name"
    focus: datetime | None  # `?at=`: the moment the audit log linked to


def _moment(value: str, what: str, now: datetime, errors: list[str]) -> datetime | None:
    try:
        return pit.parse_moment(value, now, timezone.get_current_timezone())
    except ValueError as error:
        errors.append(f"{what}: {error}")
        return None


def asked(query: QueryDict, now: datetime | None = None) -> Asked:
    now = now or timezone.now()
    errors: list[str] = []
    fmt = query.get("format", "")
    if fmt not in FORMATS:
        errors.append(f"format: {fmt[:20]!r} is not one of csv, json (or none, for the page).")
    focus = _moment(query.get("at", ""), "at", now, errors) if query.get("at") else None
    end = _moment(query.get("to", ""), "to", now, errors) if query.get("to") else None
    start = _moment(query.get("from", ""), "from", now, errors) if query.get("from") else None
    if focus is not None:
        start = start or focus - AROUND
        end = end or min(now, focus + AROUND)
    end = end or now
    start = start or end - DEFAULT_WINDOW
    if not errors and start >= end:
        errors.append("from: the window must begin before it ends.")
    if not errors and end - start > tl.MAX_WINDOW:
        errors.append(f"from: a window is at most {tl.MAX_WINDOW.days} days; narrow it.")
    kinds = set()
    for value in query.getlist("kind"):
        try:
            kinds.add(TimelineKind(value))
        except ValueError:
            errors.append(f"kind: {value[:40]!r} is not one of {', '.join(kind.value for kind in TimelineKind)}.")
    source = query.get("source", "").strip()
    if source:
        try:
            kube.validate_name(source)
        except kube.InvalidName as error:
            errors.append(f"source: {error}")
    workload = query.get("workload", "").strip()
    if workload and (len(workload) > 300 or "/" not in workload):
        errors.append("workload: give it as Kind/name, e.g. Deployment/web.")
    page = page_number(query.get("page"))
    if page > tl.MAX_PAGE:
        errors.append(f"page: at most {tl.MAX_PAGE}; narrow the window instead.")
    filters = None if errors else tl.Filters(start, end, frozenset(kinds), source)
    return Asked(filters, errors, page, fmt, workload, focus)


def find_workload(cluster: Cluster, namespace: str, value: str) -> Workload | None:
    """The namespace's workload named "Kind/name" (a filter of the namespace page)."""
    kind, _, name = value.partition("/")
    return Workload.objects.filter(cluster=cluster, namespace=namespace, kind=kind, name=name).first()


def _ceiling(moment: datetime) -> datetime:
    """Point in time takes whole seconds: the next one, so that what happened at ``moment`` is in it."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


@dataclass(frozen=True)
class ShownEntry:
    entry: tl.Entry
    then_url: str  # point in time at its moment
    audit_url: str  # the audit log's entries about it ("" when it has none)
    focused: bool  # at the moment the audit log linked to


def then_url(cluster: str, namespace: str, entry: tl.Entry) -> str:
    query = at_query(min(_ceiling(entry.at), timezone.now()))
    if entry.workload_name and entry.workload_kind != "Pod":
        return f"{reverse('workload', args=[cluster, namespace, entry.workload_kind, entry.workload_name])}?{query}"
    return f"{reverse('namespace', args=[cluster, namespace])}?{query}"


def audit_url(cluster: str, namespace: str, entry: tl.Entry) -> str:
    """The audit log around the entry's day, narrowed to its object: a version's change and author entries, a
    rollout's request and end."""
    if entry.kind == TimelineKind.VERSION:
        family, name = "config.", entry.source_name
    elif entry.kind == TimelineKind.ROLLOUT:
        family, name = "rollout.", entry.workload_name
    else:
        return ""
    day = timezone.localtime(entry.at).date().isoformat()
    query = {"action": family, "cluster": cluster, "namespace": namespace, "q": name, "since": day, "until": day}
    return f"{reverse('audit')}?{urlencode(query)}"


def shown(cluster: str, namespace: str, entries: Iterable[tl.Entry], focus: datetime | None) -> list[ShownEntry]:
    return [
        ShownEntry(
            entry,
            then_url(cluster, namespace, entry),
            audit_url(cluster, namespace, entry),
            focus is not None and abs((entry.at - focus).total_seconds()) < 1,
        )
        for entry in entries
    ]


def stale_series(stale: tl.StalePods, start: datetime, end: datetime) -> StaleSeries | None:
    """The replayed stale pods as the overview's chart draws them: per bucket, the largest count it saw (a short
    spike stays visible), starting from the count the bucket before it ended with."""
    if stale.too_many or not stale.points:
        return None
    span = end - start
    values, level, index = [], stale.points[0][1], 0
    for bucket in range(CHART_BUCKETS):
        bucket_end = start + span * (bucket + 1) / CHART_BUCKETS
        peak = level
        while index < len(stale.points) and (stale.points[index][0] < bucket_end or bucket == CHART_BUCKETS - 1):
            level = stale.points[index][1]
            peak = max(peak, level)
            index += 1
        values.append((bucket, peak))
    return StaleSeries(values, CHART_BUCKETS, start, end, len(stale.points), level)


def base_query(query: QueryDict, **changes: str) -> str:
    """The request's filters for a link (page, format changed or dropped)."""
    kept = query.copy()
    for key in ("page", "format", *changes):
        kept.pop(key, None)
    for key, value in changes.items():
        if value:
            kept[key] = value
    return kept.urlencode()


# -- exports ---------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True) if value is not None else ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def as_csv(entries: Iterable[tl.Entry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        values = [
            entry.at.isoformat(), entry.kind.value, entry.summary, entry.actor,
            f"{entry.workload_kind}/{entry.workload_name}" if entry.workload_name else "", entry.pod, entry.pod_uid,
            entry.container, f"{entry.source_kind}/{entry.source_name}" if entry.source_name else "", entry.detail,
        ]  # fmt: skip
        writer.writerow([_cell(value) for value in values])
    return out.getvalue()


def as_json(cluster: str, namespace: str, workload: Workload | None, filters: tl.Filters, page: tl.Page) -> str:
    return json.dumps(
        {
            "cluster": cluster,
            "namespace": namespace,
            "workload": {"kind": workload.kind, "name": workload.name} if workload else None,
            "from": filters.start.isoformat(),
            "to": filters.end.isoformat(),
            "truncated": page.has_next,
            "entries": [entry.as_json() for entry in page.entries],
        },
        indent=1,
    )


def picker(moment: datetime) -> str:
    """A moment as the page's datetime-local fields show it (the server's time zone)."""
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M:%S")
