"""Rollout windows: pure span arithmetic (table), then on PostgreSQL: outside a window Roll out is refused with
when the next window opens (no Kubernetes call is made), and a bulk rollout stays queued, saying so."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from drift.models import Cluster, Rollout, RolloutWindow
from drift.rollout import Target, advance_batch, plan_rollout, queue_batch
from drift.rollout.windows import Span, next_opening

# 2026-11-30 is a Monday (weekday 0).
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "moment", "is_open"),
    [
        (Span("01234", time(9), time(17)), MONDAY.replace(hour=10), True),
        (Span("01234", time(9), time(17)), MONDAY.replace(hour=17), False),
        (Span("01234", time(9), time(17)), MONDAY + timedelta(days=5, hours=10), False),  # Saturday
        (Span("0", time(22), time(2)), MONDAY.replace(hour=23), True),
        (Span("0", time(22), time(2)), MONDAY + timedelta(days=1, hours=1), True),  # Tuesday 01:00, Monday's night
        (Span("1", time(22), time(2)), MONDAY.replace(hour=1), False),  # Monday 01:00 belongs to Sunday's night
    ],
)
def test_a_span_is_open(span: Span, moment: datetime, is_open: bool) -> None:
    assert span.is_open(moment) is is_open


@pytest.mark.parametrize(
    ("spans", "moment", "opening"),
    [
        ([Span("01234", time(9), time(17))], MONDAY.replace(hour=18), MONDAY + timedelta(days=1, hours=9)),
        ([Span("01234", time(9), time(17))], MONDAY + timedelta(days=4, hours=18), MONDAY + timedelta(days=7, hours=9)),
        ([Span("5", time(6), time(8)), Span("2", time(20), time(21))], MONDAY, MONDAY + timedelta(days=2, hours=20)),
        ([], MONDAY, None),
    ],
)
def test_the_next_window_opens(spans: list[Span], moment: datetime, opening: datetime | None) -> None:
    assert next_opening(spans, moment) == opening


@pytest.fixture
def closed_cluster(settings) -> Cluster:
    """A cluster whose only window (for namespace demo) is closed right now: it opens in an hour, for a minute."""
    settings.TIME_ZONE = "UTC"
    cluster = Cluster.objects.create(name="prod", kubeconfig_path="/nonexistent/kubeconfig")
    opens = timezone.localtime() + timedelta(hours=1)
    RolloutWindow.objects.create(cluster=cluster, namespace="demo", start=opens.time().replace(second=0, microsecond=0),
                                 end=(opens + timedelta(minutes=1)).time().replace(second=0, microsecond=0))  # fmt: skip
    return cluster


@pytest.mark.django_db
def test_roll_out_outside_a_window_says_when_it_opens(closed_cluster: Cluster) -> None:
    plan = plan_rollout(closed_cluster, Target("Deployment", "demo", "env-demo"))
    assert plan.outcome == "refused"
    assert "Outside the rollout windows of prod/demo" in plan.message and "opens" in plan.message
    # Another namespace of the cluster has no window: it is not held (it fails later, on the missing kubeconfig).
    other = plan_rollout(closed_cluster, Target("Deployment", "other", "app"))
    assert "rollout windows" not in other.message


@pytest.mark.django_db
def test_a_bulk_rollout_waits_queued_for_the_window(closed_cluster: Cluster) -> None:
    batch = queue_batch([(closed_cluster, Target("Deployment", "demo", "env-demo"))], "olga")
    [rollout] = advance_batch(batch)
    assert rollout.status == Rollout.Status.QUEUED
    assert rollout.message.startswith("queued: Outside the rollout windows of prod/demo")
