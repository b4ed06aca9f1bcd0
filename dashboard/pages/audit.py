"""The audit log page and its CSV export: the filtered entries, newest first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Case, CharField, Exists, OuterRef, Q, QuerySet, Subquery, TextField, Value, When
from django.urls import reverse
from django.utils import timezone

from drift.models import AuditEvent, RefusedAttempt
from drift.vocabulary import SourceKind, WorkloadKind

# A version the snapshot recorded (actor: driftwatch) and the entry naming who wrote it (actor: the person, from
# the API server's audit events) are two entries of the append-only record; the page shows them as one row.
CHANGE_ACTIONS = (AuditEvent.Action.CONFIG_CHANGED, AuditEvent.Action.CONFIG_CREATED)
_SOURCE_KINDS = {kind.value for kind in SourceKind}
_WORKLOAD_KINDS = {kind.value for kind in WorkloadKind}


@dataclass(frozen=True)
class AuditFilters:
    action: str = ""
    actor: str = ""
    cluster: str = ""
    namespace: str = ""
    q: str = ""
    since: dt.date | None = None
    until: dt.date | None = None


def action_families() -> list[str]:
    """'rollout.', 'config.'...: a filter on one of them matches every action of that family."""
    return sorted({value.split(".")[0] + "." for value in AuditEvent.Action.values})


def _same_version(action: str | tuple[str, ...]) -> QuerySet[AuditEvent]:
    """Entries of `action` about the same object and version as the outer entry."""
    actions = (action,) if isinstance(action, str) else action
    return AuditEvent.objects.filter(
        action__in=actions,
        object_name=OuterRef("object_name"),
        object_kind=OuterRef("object_kind"),
        namespace=OuterRef("namespace"),
        cluster_name=OuterRef("cluster_name"),
        detail__resource_version=OuterRef("detail__resource_version"),
    )


def audit_rows(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """What the page lists, newest first: every entry, except that an entry naming the author of a recorded change
    is shown on that change's row (`author`, `author_message`) instead of a row of its own. The record keeps both;
    the CSV export lists both (`audit_events`)."""
    latest_author = _same_version(AuditEvent.Action.CONFIG_AUTHOR).order_by("-at", "-id")
    rows = AuditEvent.objects.annotate(
        author=Case(
            When(action__in=CHANGE_ACTIONS, then=Subquery(latest_author.values("actor")[:1])),
            default=Value(""),
            output_field=CharField(),
        ),
        author_message=Case(
            When(action__in=CHANGE_ACTIONS, then=Subquery(latest_author.values("message")[:1])),
            default=Value(""),
            output_field=TextField(),
        ),
        shown_with_its_change=Case(
            When(action=AuditEvent.Action.CONFIG_AUTHOR, then=Exists(_same_version(CHANGE_ACTIONS))), default=False
        ),
    ).exclude(shown_with_its_change=True)
    return _filtered(rows, filters, actor=Q(actor=filters.actor) | Q(author=filters.actor))


def audit_events(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Every entry the filters match, newest first (the CSV export)."""
    return _filtered(AuditEvent.objects.all(), filters, actor=Q(actor=filters.actor))


def _filtered(events: QuerySet[AuditEvent], filters: AuditFilters, actor: Q) -> QuerySet[AuditEvent]:
    if filters.action in action_families():
        events = events.filter(action__startswith=filters.action)
    elif filters.action:
        events = events.filter(action=filters.action)
    if filters.actor:
        events = events.filter(actor)
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


def counted_refusals(now: dt.datetime, hours: int = 24, limit: int = 50) -> list[RefusedAttempt]:
    """The hourly counters of refusals anyone can cause at will, newest hour first: at most a few rows an hour."""
    return list(
        RefusedAttempt.objects.filter(hour__gte=now - dt.timedelta(hours=hours)).order_by("-hour", "-count")[:limit]
    )


def object_url(event: AuditEvent) -> str:
    """The page of what the entry is about: a ConfigMap or Secret, a workload, a pod, or the rollout itself."""
    if not (event.cluster_name and event.namespace and event.object_name):
        return ""
    where = [event.cluster_name, event.namespace]
    if event.object_kind in _SOURCE_KINDS:
        return reverse("source", args=[*where, SourceKind(event.object_kind).plural, event.object_name])
    if event.object_kind == WorkloadKind.POD:
        return reverse("pod", args=[*where, event.object_name])
    if event.object_kind in _WORKLOAD_KINDS:
        return reverse("workload", args=[*where, event.object_kind, event.object_name])
    return ""


def rollout_url(event: AuditEvent) -> str:
    rollout = event.detail.get("rollout") if isinstance(event.detail, dict) else None
    return reverse("rollout", args=[rollout]) if isinstance(rollout, int) else ""


@dataclass(frozen=True)
class AuditRow:
    """One row of the page: the entry, the person first when known, and links to what it is about."""

    event: AuditEvent
    who: str
    seen_by: str  # who recorded it, where the person is someone else (driftwatch saw the change)
    object_url: str
    rollout_url: str


def shown_rows(events: Iterable[AuditEvent]) -> list[AuditRow]:
    rows = []
    for event in events:
        author = getattr(event, "author", "") or ""
        who = author or event.actor
        rows.append(
            AuditRow(event, who, event.actor if who != event.actor else "", object_url(event), rollout_url(event))
        )
    return rows
