"""Storing what a cluster's API server sends to the audit webhook (dashboard.views.kube_audit authenticates,
parses and answers; this module decides what is kept): each write event once, refused writes as attempts in the
audit log, and every refusal counted per cluster and reason (AuditWebhookRejection)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from drift import audit
from drift.attribution import attribute_events
from drift.authorship import WriteEvent
from drift.models import AuditEvent, AuditWebhookRejection, Cluster, KubeAuditEvent

log = logging.getLogger(__name__)


def count_refusal(cluster: Cluster | None, status: int, reason: str) -> None:
    """One counter row per (cluster, reason): a flood of refusals never grows the table."""
    name = cluster.name if cluster is not None else ""
    counted = AuditWebhookRejection.objects.filter(cluster_name=name, reason=reason).update(
        count=F("count") + 1, last_at=timezone.now(), status_code=status
    )
    if not counted:
        with transaction.atomic():
            row, _ = AuditWebhookRejection.objects.select_for_update().get_or_create(
                cluster_name=name, reason=reason, defaults={"status_code": status}
            )
            AuditWebhookRejection.objects.filter(pk=row.pk).update(count=F("count") + 1, last_at=timezone.now())
    log.warning("audit webhook of %s: refused a batch (%s)", name or "an unknown cluster", reason)


@dataclass(frozen=True)
class Stored:
    stored: int
    joined: int
    replayed: bool = False  # every event of the batch was received before: nothing stored


def store_events(cluster: Cluster, events: list[WriteEvent]) -> Stored:
    """Store the events not received before, record the refused writes among them as attempts, and join the
    rest to the versions they produced."""
    known = set(
        KubeAuditEvent.objects.filter(cluster=cluster, audit_id__in=[e.audit_id for e in events]).values_list(
            "audit_id", flat=True
        )
    )
    if events and len(known) == len(events):
        return Stored(0, 0, replayed=True)
    fresh = [event for event in events if event.audit_id not in known]
    with transaction.atomic():
        stored = KubeAuditEvent.objects.bulk_create([_row(cluster, event) for event in fresh], ignore_conflicts=True)
        audit.record_many(_attempt_entry(cluster, event) for event in fresh if event.attempt)
    return Stored(len(fresh), attribute_events(cluster, stored))


def _row(cluster: Cluster, event: WriteEvent) -> KubeAuditEvent:
    return KubeAuditEvent(
        cluster=cluster, audit_id=event.audit_id, verb=event.verb, kind=event.kind,
        namespace=event.namespace[:253], name=event.name[:253], uid=event.uid[:64],
        replaced_resource_version=event.replaced_resource_version[:32], username=event.username[:253],
        groups=list(event.groups)[:50], impersonated_user=event.impersonated_user[:253],
        impersonated_groups=list(event.impersonated_groups)[:50], user_agent=event.user_agent[:512],
        source_ips=list(event.source_ips)[:10], status_code=event.status_code,
        request_received_at=event.received_at, completed_at=event.completed_at,
        field_manager=event.field_manager[:128], dry_run=event.dry_run,
    )  # fmt: skip


def _attempt_entry(cluster: Cluster, event: WriteEvent) -> AuditEvent:
    """A refused write (403, 409, 422): an attempt, recorded with who made it; never a version."""
    return audit.entry(
        event.author,
        AuditEvent.Action.CONFIG_ATTEMPT,
        f"{event.verb} of {event.kind} {event.namespace}/{event.name} by {event.author} refused ({event.status_code})",
        cluster_name=cluster.name,
        namespace=event.namespace,
        object_kind=event.kind,
        object_name=event.name,
        detail={
            "status_code": event.status_code, "verb": event.verb, "user": event.username,
            "impersonated_user": event.impersonated_user, "user_agent": event.user_agent,
            "source_ips": list(event.source_ips), "audit_id": event.audit_id,
        },
    )  # fmt: skip
