"""The receiver of a cluster's API-server audit events (kube-apiserver's webhook backend, batch mode): one URL per
registered cluster, `POST /kubernetes-audit/CLUSTER/` with `Authorization: Bearer TOKEN`.

It answers fast, as the API server expects (it retries a batch on 5xx and drops it after ~90 s): the batch is
checked, its writes to ConfigMaps and Secrets are stored by auditID (a batch sent twice stores nothing twice),
joined to the versions they produced (a few queries per object), and the answer returned. A batch that is
unauthenticated, too large, not an audit.k8s.io/v1 EventList, or entirely stored already gets a 4xx that says
why; nothing of it is stored, and the refusal is counted (AuditWebhookRejection)."""

from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from drift.attribution import attribute_events
from drift.authorship import MalformedEvent, WriteEvent, read_event_list
from drift.clusters import audit_token_hash
from drift.models import AuditEvent, AuditWebhookRejection, Cluster, KubeAuditEvent

log = logging.getLogger(__name__)


def _refuse(cluster: Cluster | None, status: int, reason: str, said: str) -> JsonResponse:
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
    return JsonResponse({"error": said}, status=status)


@csrf_exempt  # a machine client with a bearer token, not a browser session
@login_not_required
@require_POST
def receive(request: HttpRequest, cluster: str) -> JsonResponse:
    found = Cluster.objects.filter(name=cluster).first()
    sent = request.headers.get("Authorization", "")
    token = sent[len("Bearer ") :] if sent.startswith("Bearer ") else ""
    if (
        found is None
        or not found.audit_token_hash
        or not token
        or not hmac.compare_digest(audit_token_hash(token), found.audit_token_hash)
    ):
        # One answer for "no such cluster", "no token configured" and "wrong token": nothing to probe names with.
        return _refuse(
            found if found is not None and found.audit_token_hash else None,
            401,
            "unauthenticated",
            "a valid bearer token for this cluster is required",
        )
    limit = settings.DRIFTWATCH_AUDIT_MAX_BYTES
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = limit + 1
    if declared > limit:
        return _refuse(found, 413, "oversized", f"a batch may hold at most {limit} bytes")
    if request.content_type != "application/json":
        return _refuse(found, 415, "not json", "send application/json")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _refuse(found, 413, "oversized", f"a batch may hold at most {limit} bytes")
    try:
        events = read_event_list(json.loads(body))
    except (ValueError, MalformedEvent) as error:
        said = str(error) if isinstance(error, MalformedEvent) else "the body is not JSON"
        return _refuse(found, 400, "malformed", said)
    if len({event.audit_id for event in events}) != len(events):
        return _refuse(found, 400, "malformed", "an auditID appears twice in the batch")
    known = set(
        KubeAuditEvent.objects.filter(cluster=found, audit_id__in=[e.audit_id for e in events]).values_list(
            "audit_id", flat=True
        )
    )
    if events and len(known) == len(events):
        return _refuse(found, 409, "replayed", "every event of this batch was received before")
    fresh = [event for event in events if event.audit_id not in known]
    with transaction.atomic():
        stored = KubeAuditEvent.objects.bulk_create([_row(found, event) for event in fresh], ignore_conflicts=True)
        AuditEvent.objects.bulk_create([_attempt_entry(found, event) for event in fresh if event.attempt])
    joined = attribute_events(found, stored)
    return JsonResponse({"stored": len(fresh), "joined": joined})


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
    return AuditEvent(
        actor=event.author,
        action=AuditEvent.Action.CONFIG_ATTEMPT,
        cluster_name=cluster.name,
        namespace=event.namespace,
        object_kind=event.kind,
        object_name=event.name,
        message=f"{event.verb} of {event.kind} {event.namespace}/{event.name} by {event.author} refused "
        f"({event.status_code})",
        detail={
            "status_code": event.status_code, "verb": event.verb, "user": event.username,
            "impersonated_user": event.impersonated_user, "user_agent": event.user_agent,
            "source_ips": list(event.source_ips), "audit_id": event.audit_id,
        },
    )  # fmt: skip


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    """The 404 of the audit receiver's own process (dashboard.urls_audit): it has no pages, and so no page layout
    (whose links name views it does not serve)."""
    return JsonResponse({"error": "not found: this address serves the audit receiver only"}, status=404)
