"""The notifications page: everyone reads it and sees a failing channel; operators add and delete channels and
rules (audited); viewers get 403; a hostile URL is refused with the reason."""

import pytest
from django.urls import reverse
from django.utils import timezone

from drift.models import AuditEvent, Channel, NotificationRule
from tests.facts import user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


@pytest.fixture
def operator(client):
    client.force_login(user("olga", "operator"))
    return client


def test_a_failing_channel_is_shown_to_everyone(client):
    Channel.objects.create(name="team", url="http://127.0.0.1:9/x", last_error="the webhook answered HTTP 500",
                           last_failure_at=timezone.now())  # fmt: skip
    client.force_login(user("vera", "viewer"))
    page = client.get(reverse("notifications"))
    assert page.status_code == 200
    assert b"failing since" in page.content and b"HTTP 500" in page.content
    assert b"Add channel" not in page.content


def test_a_viewer_may_not_add_a_channel(client):
    client.force_login(user("vera", "viewer"))
    response = client.post(reverse("notification-channel-add"), {"name": "x", "kind": "slack", "url": "http://a.test/"})
    assert response.status_code == 403
    assert not Channel.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED).exists()


def test_an_operator_adds_a_channel_and_a_rule(operator):
    response = operator.post(
        reverse("notification-channel-add"), {"name": "team", "kind": "json", "url": "https://hooks.test/x"}
    )
    assert response.status_code == 302
    channel = Channel.objects.get()
    assert channel.signing_key
    rule = {"name": "stale-10", "channel": channel.pk, "event": "stale", "for_minutes": 10, "reminder_minutes": 240,
            "namespace": "demo", "quiet_start": "22:00", "quiet_end": "07:00"}  # fmt: skip
    assert operator.post(reverse("notification-rule-add"), rule).status_code == 302
    assert NotificationRule.objects.get().namespace == "demo"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CHANNEL_CHANGED).count() == 2
    assert operator.post(reverse("notification-channel-delete", args=[channel.pk])).status_code == 302
    assert not Channel.objects.exists() and not NotificationRule.objects.exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "javascript:alert(1)", "ftp://a.test/"])
def test_a_hostile_url_is_refused(operator, url):
    response = operator.post(reverse("notification-channel-add"), {"name": "x", "kind": "slack", "url": url})
    assert response.status_code == 400
    assert b"http:// or https://" in response.content
    assert not Channel.objects.exists()


def test_an_operator_of_one_namespace_may_not_manage_rules_beyond_it(client):
    client.force_login(user("nina", "operator", namespaces=["local/demo"]))
    channel = Channel.objects.create(name="team", kind="slack", url="https://hooks.test/x")
    everywhere = {"name": "all", "channel": channel.pk, "event": "stale", "for_minutes": 10, "reminder_minutes": 240}
    assert client.post(reverse("notification-rule-add"), everywhere).status_code == 403
    other = {**everywhere, "name": "shop", "cluster": "local", "namespace": "shop"}
    assert client.post(reverse("notification-rule-add"), other).status_code == 403
    assert not NotificationRule.objects.exists()
    own = {**everywhere, "name": "demo", "cluster": "local", "namespace": "demo"}
    assert client.post(reverse("notification-rule-add"), own).status_code == 302
    foreign = NotificationRule.objects.create(name="wide", channel=channel, event="stale", for_minutes=5)
    assert client.post(reverse("notification-rule-delete", args=[foreign.pk])).status_code == 403
    assert NotificationRule.objects.filter(pk=foreign.pk).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED).count() == 3
