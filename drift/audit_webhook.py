"""Storing what a cluster's API server sends to the audit webhook (dashboard.views.kube_audit authenticates,
parses and answers; this module decides what is kept): each write event once, refused writes as attempts in the
audit log, and every refusal counted per cluster and reason (AuditWebhookRejection)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from drift import audit
from drift.attribution import attribute_events
from drift.authorship import WriteEvent
from drift.bounded import bounded
from drift.models import AuditEvent, AuditWebhookRejection, Cluster, KubeAuditEvent, RefusedAttempt

log = logging.getLogger(__name__)

# sourceIPs kept as addresses: the connection's own and up to two proxies in front of the API server.
SOURCE_IPS_KEPT = 3
# Groups kept of a user (an identity with more is rare; the join never reads them).
LIST_MAX = 50
BATCH_SIZE = 1000


def count_refusal(cluster: Cluster | None, status: int, reason: str, events: int = 1) -> None:
    """One counter row per (cluster, reason): a flood of refusals never grows the table. A refused batch counts
    one; refused events count one each."""
    name = cluster.name if cluster is not None else ""
    counted = AuditWebhookRejection.objects.filter(cluster_name=name, reason=reason).update(
        count=F("count") + events, last_at=timezone.now(), status_code=status
    )
    if not counted:
        with transaction.atomic():
            row, _ = AuditWebhookRejection.objects.select_for_update().get_or_create(
                cluster_name=name, reason=reason, defaults={"status_code": status}
            )
            AuditWebhookRejection.objects.filter(pk=row.pk).update(count=F("count") + events, last_at=timezone.now())
    log.warning("audit webhook of %s: refused %s (%s)", name or "an unknown cluster",
                "a batch" if reason.split()[0] != "event" else f"{events} event(s)", reason)  # fmt: skip


@dataclass(frozen=True)
class Stored:
    stored: int
    joined: int
    replayed: bool = False  # every event of the batch was received before: nothing stored
    counted: int = 0  # refused writes over the hour's limit for their identity: counted, not stored


def store_events(cluster: Cluster, events: list[WriteEvent]) -> Stored:
    """Store the events not received before (told apart by their digest, never by the client's auditID),
    record the refused writes among them as attempts (up to DRIFTWATCH_ATTEMPT_ENTRIES_PER_HOUR per identity
    and hour, the rest counted), and join the rest to the versions they produced."""
    known = set(
        KubeAuditEvent.objects.filter(cluster=cluster, digest__in=[e.digest for e in events]).values_list(
            "digest", flat=True
        )
    )
    if events and len(known) == len(events):
        return Stored(0, 0, replayed=True)
    fresh = [event for event in events if event.digest not in known]
    kept = [event for event in fresh if not event.attempt or _attempt_within_limit(cluster, event)]
    with transaction.atomic():
        stored = KubeAuditEvent.objects.bulk_create([_row(cluster, event) for event in kept], ignore_conflicts=True)
        audit.record_many(_attempt_entry(cluster, event) for event in kept if event.attempt)
    return Stored(len(kept), attribute_events(cluster, stored), counted=len(fresh) - len(kept))


def _attempt_within_limit(cluster: Cluster, event: WriteEvent) -> bool:
    """Any pod's token can make refused writes at will: each identity gets a few stored an hour, the rest are
    counted (RefusedAttempt, keyed CLUSTER/USER)."""
    said = f"{event.verb} of {event.kind} {event.namespace}/{event.name} refused ({event.status_code})"
    count = audit.count_refusal(AuditEvent.Action.CONFIG_ATTEMPT, said, key=f"{cluster.name}/{event.author}")
    return count <= settings.DRIFTWATCH_ATTEMPT_ENTRIES_PER_HOUR


def kept_source_ips(source_ips: tuple[str, ...]) -> tuple[list[str], int]:
    """The last SOURCE_IPS_KEPT addresses, each cut, and how many came before them. The API server lists the
    client's X-Forwarded-For first and the connection's own address last: only the last ones were added by
    the API server or the proxies in front of it; the rest are the client's claim."""
    kept = [bounded(address, 64) for address in source_ips[-SOURCE_IPS_KEPT:]]
    return kept, max(len(source_ips) - SOURCE_IPS_KEPT, 0)


def _texts(values: tuple[str, ...]) -> list[str]:
    return [bounded(value, 253) for value in values[:LIST_MAX]]


def _row(cluster: Cluster, event: WriteEvent) -> KubeAuditEvent:
    ips, claimed = kept_source_ips(event.source_ips)
    return KubeAuditEvent(
        cluster=cluster, audit_id=event.audit_id, digest=event.digest, verb=event.verb, kind=event.kind,
        namespace=bounded(event.namespace, 253), name=bounded(event.name, 253), uid=bounded(event.uid, 64),
        replaced_resource_version=bounded(event.replaced_resource_version, 32),
        username=bounded(event.username, 253), groups=_texts(event.groups),
        impersonated_user=bounded(event.impersonated_user, 253), impersonated_groups=_texts(event.impersonated_groups),
        user_agent=bounded(event.user_agent, 512), source_ips=ips, claimed_source_ips_count=claimed,
        status_code=event.status_code, request_received_at=event.received_at, completed_at=event.completed_at,
        field_manager=bounded(event.field_manager, 128), dry_run=event.dry_run,
    )  # fmt: skip


def _attempt_entry(cluster: Cluster, event: WriteEvent) -> AuditEvent:
    """A refused write (403, 409, 422): an attempt, recorded with who made it; never a version."""
    ips, claimed = kept_source_ips(event.source_ips)
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
            "source_ips": ips, "claimed_source_ips": claimed, "audit_id": event.audit_id,
        },
    )  # fmt: skip


def prune_kube_audit_events(retention_days: int, now: datetime | None = None) -> int:
    """Delete the stored audit events older than the retention that no kept version is joined to (a version's
    pruning unjoins them), and the refusal counters older than it; returns how many events went."""
    cutoff = (now or timezone.now()) - timedelta(days=retention_days)
    old = KubeAuditEvent.objects.filter(arrived_at__lt=cutoff, version=None).values_list("pk", flat=True)
    deleted = 0
    while batch := list(old[:BATCH_SIZE]):
        deleted += KubeAuditEvent.objects.filter(pk__in=batch).delete()[0]
    RefusedAttempt.objects.filter(hour__lt=cutoff).delete()
    return deleted
