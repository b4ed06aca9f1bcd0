"""Sending one notice: the attempt, its outcome recorded on the notice and its channel, failures audited (the
entry names the channel's host; the reason, which would map what the host answers, is in its detail)."""

from __future__ import annotations

from django.utils import timezone

from drift import audit, metrics
from drift.models import AuditEvent, Channel, Notice
from drift.notify.deliver import AddressRefused, DeliveryFailed, Message, deliver


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
        if not final and not isinstance(error, AddressRefused):
            metrics.NOTIFICATIONS.labels(channel.name, "retried").inc()
            return "retry"
        Notice.objects.filter(pk=notice.pk).update(status=Notice.Status.FAILED)
        metrics.NOTIFICATIONS.labels(channel.name, "failed").inc()
        audit.record(
            "driftwatch", AuditEvent.Action.NOTIFICATION_FAILED,
            f"notice '{notice.subject}' to channel {channel.name} ({channel.where}) failed",
            cluster_name=notice.cluster, namespace=notice.namespace, object_kind="Channel", object_name=channel.name,
            detail={"notice": notice.pk, "rule": notice.rule.name, "attempts": notice.attempts + 1, "reason": reason},
        )  # fmt: skip
        return "failed"
    now = timezone.now()
    Notice.objects.filter(pk=notice.pk).update(
        status=Notice.Status.SENT, delivered_at=now, sends=notice.sends + 1, last_error=""
    )
    Channel.objects.filter(pk=channel.pk).update(last_success_at=now, last_error="")
    metrics.NOTIFICATIONS.labels(channel.name, "sent").inc()
    return "sent"


def send_test(channel: Channel, actor: str, link: str) -> str:
    """A test notice to one channel, asked for by `actor`: audited before anything leaves, sent through the same
    delivery (and its outbound address checks) as a real notice, its outcome kept on the channel like one.
    Returns '' when it was delivered, else the reason."""
    audit.record(
        actor, AuditEvent.Action.NOTIFICATION_TEST,
        f"{actor} sent a test notice to channel {channel.name} ({channel.where})",
        object_kind="Channel", object_name=channel.name, detail={"channel": channel.pk},
    )  # fmt: skip
    message = Message(
        f"Driftwatch test notice for channel {channel.name}",
        f"{actor} asked Driftwatch to check that notices reach this channel. Nothing is stale because of it.",
        link,
        {"event": "test", "test": True, "channel": channel.name},
    )
    try:
        deliver(channel, message)
    except DeliveryFailed as error:
        reason = str(error)[:255]
        Channel.objects.filter(pk=channel.pk).update(last_error=reason, last_failure_at=timezone.now())
        return reason  # not counted in driftwatch_notifications_total, which counts notices
    Channel.objects.filter(pk=channel.pk).update(last_success_at=timezone.now(), last_error="")
    return ""
