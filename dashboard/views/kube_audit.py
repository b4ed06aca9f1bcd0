"""The receiver of a cluster's API-server audit events (kube-apiserver's webhook backend, batch mode): one URL per
registered cluster, `POST /kubernetes-audit/CLUSTER/` with `Authorization: Bearer TOKEN`.

This view authenticates, reads and answers; what is kept is drift.audit_webhook's decision. It answers fast, as
the API server expects (it retries a batch on 5xx and drops it after ~90 s). Each event is judged on its own:
one that cannot be read is refused and counted (reason "event ..."), the others are kept. A batch that is
unauthenticated, too large, not an audit.k8s.io/v1 EventList (or nested too deeply to read), with no event that
could be read, or entirely stored already gets a 4xx that says why; nothing of it is stored, and the refusal is
counted (AuditWebhookRejection)."""

from __future__ import annotations

import hmac
import json
from collections import Counter

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from drift.audit_webhook import count_refusal, store_events
from drift.authorship import MalformedEvent, read_batch
from drift.clusters import audit_token_hash
from drift.models import Cluster


def _refuse(cluster: Cluster | None, status: int, reason: str, said: str) -> JsonResponse:
    count_refusal(cluster, status, reason)
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
        document = json.loads(body)
    except RecursionError:
        return _refuse(found, 400, "malformed", "the body is nested too deeply")
    except ValueError:
        return _refuse(found, 400, "malformed", "the body is not JSON")
    try:
        batch = read_batch(document)
    except MalformedEvent as error:
        return _refuse(found, 400, "malformed", str(error))
    for reason, refused in Counter(error.reason for error in batch.refused).items():
        count_refusal(found, 400, reason, events=refused)
    result = store_events(found, batch.events)
    if batch.refused and not result.stored:
        # Nothing of it could be kept: a 400 that says why (the API server does not retry a 4xx).
        said = "; ".join(sorted({str(error) for error in batch.refused}))
        return JsonResponse({"error": f"no event of this batch could be read: {said}"[:1000]}, status=400)
    if result.replayed and not batch.refused:
        return _refuse(found, 409, "replayed", "every event of this batch was received before")
    answer = {"stored": result.stored, "joined": result.joined, "refused": len(batch.refused)}
    if result.counted:
        answer["counted"] = result.counted
    return JsonResponse(answer)


def not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    """The 404 of the audit receiver's own process (dashboard.urls_audit): it has no pages, and so no page layout
    (whose links name views it does not serve)."""
    return JsonResponse({"error": "not found: this address serves the audit receiver only"}, status=404)
