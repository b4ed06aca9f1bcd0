"""The audit log page and its CSV export: the filtered entries, newest first."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from drift.models import AuditEvent, RefusedAttempt


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


def counted_refusals(now: dt.datetime, hours: int = 24, limit: int = 50) -> list[RefusedAttempt]:
    """The hourly counters of refusals anyone can cause at will, newest hour first: at most a few rows an hour."""
    return list(
        RefusedAttempt.objects.filter(hour__gte=now - dt.timedelta(hours=hours)).order_by("-hour", "-count")[:limit]
    )
