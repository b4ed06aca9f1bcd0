"""Episodes of a rule, on stored facts (PostgreSQL, no cluster): a cluster whose snapshots fail for longer than the
rule's minutes opens one episode, held during quiet hours and sent when they end, never twice, closed by a good
snapshot; a new failure spell is a new episode."""

from datetime import time, timedelta

import pytest
from django.utils import timezone

from drift.models import Channel, Cluster, Notice, NotificationRule, SnapshotRun
from drift.notify.evaluate import evaluate_cluster

pytestmark = pytest.mark.django_db


def run(cluster: Cluster, minutes_ago: float, status: str) -> None:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    SnapshotRun.objects.create(
        cluster=cluster, started_at=at, finished_at=at, status=status, error="connection refused"
    )


def test_a_failing_spell_notifies_once_after_quiet_hours(settings) -> None:
    settings.TIME_ZONE = "UTC"
    cluster = Cluster.objects.create(name="prod", kubeconfig_path="/nonexistent")
    channel = Channel.objects.create(name="team", url="http://127.0.0.1:9/hook")
    now = timezone.now()
    hour = now.time().replace(minute=0, second=0, microsecond=0)
    quiet_end = time((hour.hour + 1) % 24)
    rule = NotificationRule.objects.create(
        name="unreadable", channel=channel, event="snapshots_failing", for_minutes=10,
        quiet_start=hour, quiet_end=quiet_end,
    )  # fmt: skip
    rule.created_at = now - timedelta(hours=1)
    rule.save()
    run(cluster, 30, SnapshotRun.Status.SUCCEEDED)
    run(cluster, 5, SnapshotRun.Status.FAILED)
    assert evaluate_cluster(cluster, now=now) == [], "failing for 5 minutes only"

    run(cluster, 15, SnapshotRun.Status.FAILED)
    assert evaluate_cluster(cluster, now=now) == [], "quiet hours: held"
    notice = Notice.objects.get()
    assert notice.status == Notice.Status.HELD
    assert "prod" in notice.text and "connection refused" in notice.text

    after_quiet = now + timedelta(hours=1)
    assert evaluate_cluster(cluster, now=after_quiet) == [notice.pk]
    assert evaluate_cluster(cluster, now=after_quiet + timedelta(minutes=1)) == [], "never twice"
    Notice.objects.filter(pk=notice.pk).update(status=Notice.Status.SENT)
    reminder = after_quiet + timedelta(minutes=rule.reminder_minutes)
    assert evaluate_cluster(cluster, now=reminder) == [notice.pk], "reminded while it lasts"

    run(cluster, 0, SnapshotRun.Status.SUCCEEDED)
    assert evaluate_cluster(cluster, now=reminder + timedelta(minutes=1)) == []
    notice.refresh_from_db()
    assert notice.closed_at is not None, "a good snapshot ends the episode"
