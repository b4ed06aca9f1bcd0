"""Sending one notice: the attempt, its outcome recorded on the notice and its channel, failures audited."""

from __future__ import annotations

from django.utils import timezone

from drift import audit, metrics
from drift.models import AuditEvent, Channel, Notice
from drift.notify.deliver import DeliveryFailed, Message, deliver


def send(notice_id: int, final: bool) -> str:
    """'sent', 'retry' (try again after backoff) or 'failed' (after the last try, or nothing to send)."""
    notice = Notice.objects.select_related("rule__channel").filter(pk=notice_id).first()
    if notice is None or notice.status not in (Notice.Status.SENDING, Notice.Status.FAILED):
        return "failed"
    channel = notice.rule.channel
    message = Message(notice.subject, notice.text, notice.detail.get("link", ""), notice.detail)
    Notice.objects.filter(pk=notice.pk).update(attempts=notice.attempts + 1)
    try:
        deliver(channel, message)
    except DeliveryFailed as error:
        reason = str(error)[:255]
        now = timezone.now()
        Notice.objects.filter(pk=notice.pk).update(last_error=reason)
        Channel.objects.filter(pk=channel.pk).update(last_error=reason, last_failure_at=now)
        if not final:
            metrics.NOTIFICATIONS.labels(channel.name, "retried").inc()
            return "retry"
        Notice.objects.filter(pk=notice.pk).update(status=Notice.Status.FAILED)
        metrics.NOTIFICATIONS.labels(channel.name, "failed").inc()
        audit.record(
            "driftwatch", AuditEvent.Action.NOTIFICATION_FAILED,
            f"notice '{notice.subject}' to channel {channel.name} failed: {reason}",
            cluster_name=notice.cluster, namespace=notice.namespace, object_kind="Channel", object_name=channel.name,
            detail={"notice": notice.pk, "rule": notice.rule.name, "attempts": notice.attempts + 1},
        )  # fmt: skip
        return "failed"
    now = timezone.now()
    Notice.objects.filter(pk=notice.pk).update(
        status=Notice.Status.SENT, delivered_at=now, sends=notice.sends + 1, last_error=""
    )
    Channel.objects.filter(pk=channel.pk).update(last_success_at=now, last_error="")
    metrics.NOTIFICATIONS.labels(channel.name, "sent").inc()
    return "sent"
