"""The notifications page: everyone reads it and sees a failing channel (viewers: that it fails and its host, never
its URL nor the error's detail); operators add and delete channels and rules within their scopes (audited);
viewers get 403; a hostile URL, or one aimed inward, is refused with the reason."""

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from drift.models import AuditEvent, Channel, Notice, NotificationRule
from drift.notify.deliver import SIGNATURE_HEADER, signature
from tests.facts import user
from tests.receiver import receiver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


@pytest.fixture
def operator(client):
    client.force_login(user("olga", "operator"))
    return client


SLACK_URL = "https://hooks.slack.test/services/T0001/B0001/s3cr3tPathToken"


def failing_channel() -> Channel:
    channel = Channel.objects.create(name="team", url=SLACK_URL, last_error="cannot connect (ConnectionError)",
                                     last_failure_at=timezone.now())  # fmt: skip
    rule = NotificationRule.objects.create(name="stale", channel=channel)
    Notice.objects.create(rule=rule, key="k", subject="env-demo stale", text="t", status=Notice.Status.FAILED,
                          last_error="no answer within 10 s")  # fmt: skip
    return channel


def test_a_failing_channel_is_shown_to_everyone(client):
    failing_channel()
    client.force_login(user("vera", "viewer"))
    page = client.get(reverse("notifications"))
    assert page.status_code == 200
    assert b"failing since" in page.content and b"hooks.slack.test" in page.content
    assert b"Add channel" not in page.content


def test_a_viewer_sees_the_host_never_the_url_nor_the_error_detail(client):
    failing_channel()
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("notifications")).content.decode()
    assert "s3cr3tPathToken" not in content and "/services/" not in content
    assert "ConnectionError" not in content and "no answer within" not in content
    assert "delivery failed" in content


def test_an_operator_sees_the_error_detail_but_not_the_secret_path(operator):
    failing_channel()
    content = operator.get(reverse("notifications")).content.decode()
    assert "cannot connect (ConnectionError)" in content and "no answer within 10 s" in content
    assert "s3cr3tPathToken" not in content


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
    assert (
        operator.post(reverse("notification-channel-delete", args=[channel.pk]), {"confirm": "yes"}).status_code == 302
    )
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
    assert client.post(reverse("notification-rule-delete", args=[foreign.pk]), {"confirm": "yes"}).status_code == 403
    assert NotificationRule.objects.filter(pk=foreign.pk).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED).count() == 3


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:8000/"]
)
def test_an_inward_url_is_refused_with_the_setting_that_allows_it(operator, settings, url):
    settings.DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS = []
    response = operator.post(reverse("notification-channel-add"), {"name": "x", "kind": "slack", "url": url})
    assert response.status_code == 400
    assert b"DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS" in response.content
    assert not Channel.objects.exists()


def test_an_operator_of_one_namespace_may_not_delete_a_channel_carrying_another_namespaces_rule(client):
    client.force_login(user("nina", "operator", namespaces=["local/demo"]))
    channel = Channel.objects.create(name="team", kind="slack", url="https://hooks.test/x")
    NotificationRule.objects.create(name="demo", channel=channel, cluster="local", namespace="demo")
    NotificationRule.objects.create(name="shop", channel=channel, cluster="local", namespace="shop")
    response = client.post(reverse("notification-channel-delete", args=[channel.pk]), {"confirm": "yes"})
    assert response.status_code == 403
    assert Channel.objects.filter(pk=channel.pk).exists() and NotificationRule.objects.count() == 2
    [denied] = AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED)
    assert "shop" in denied.message
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CHANNEL_CHANGED).exists()


def test_deleting_a_channel_is_audited_with_the_rules_it_removes(client):
    client.force_login(user("nina", "operator", namespaces=["local/demo"]))
    channel = Channel.objects.create(name="team", kind="slack", url="https://hooks.test/x")
    NotificationRule.objects.create(name="demo-stale", channel=channel, cluster="local", namespace="demo")
    assert client.post(reverse("notification-channel-delete", args=[channel.pk]), {"confirm": "yes"}).status_code == 302
    assert not Channel.objects.exists() and not NotificationRule.objects.exists()
    [deleted] = AuditEvent.objects.filter(action=AuditEvent.Action.CHANNEL_CHANGED)
    assert deleted.actor == "nina" and deleted.object_name == "team"
    assert deleted.detail["rules"] == ["demo-stale"] and "demo-stale" in deleted.message


def test_the_help_names_the_time_zone_and_no_placeholder(operator, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    Channel.objects.create(name="team", url=SLACK_URL)
    content = operator.get(reverse("notifications")).content.decode()
    assert "(TIME_ZONE)" not in content and "N minutes" not in content
    assert "Europe/Berlin" in content


def test_a_rule_reads_with_its_minutes(operator):
    channel = Channel.objects.create(name="team", url=SLACK_URL)
    NotificationRule.objects.create(name="slow", channel=channel, event="stale", for_minutes=12)
    content = operator.get(reverse("notifications")).content.decode()
    assert "pods stale for more than 12 min" in content


def test_delete_asks_first_without_script_and_only_the_answer_deletes(operator):
    channel = Channel.objects.create(name="team", url=SLACK_URL)
    NotificationRule.objects.create(name="demo-stale", channel=channel, namespace="demo")
    page = operator.get(reverse("notifications")).content.decode()
    delete_url = reverse("notification-channel-delete", args=[channel.pk])
    assert f'<a href="{delete_url}"' in page, "Delete is a link to the question, not a button that deletes"

    question = operator.get(delete_url)
    assert question.status_code == 200
    content = question.content.decode()
    assert "Delete channel team?" in content and "its rule demo-stale is deleted with it" in content
    assert 'name="confirm" value="yes"' in content
    assert "<script" not in content.split("<main>")[1], "a plain form: no script, which the CSP would refuse inline"
    assert Channel.objects.filter(pk=channel.pk).exists(), "asking changes nothing"

    unanswered = operator.post(delete_url)
    assert unanswered.status_code == 200 and b"Delete channel team?" in unanswered.content
    assert Channel.objects.filter(pk=channel.pk).exists(), "a POST without the answer asks again"

    assert operator.post(delete_url, {"confirm": "yes"}).status_code == 302
    assert not Channel.objects.filter(pk=channel.pk).exists()


def test_a_rule_delete_asks_first_too(operator):
    channel = Channel.objects.create(name="team", url=SLACK_URL)
    rule = NotificationRule.objects.create(name="demo-stale", channel=channel, namespace="demo")
    url = reverse("notification-rule-delete", args=[rule.pk])
    assert b"Delete rule demo-stale?" in operator.get(url).content
    operator.post(url)
    assert NotificationRule.objects.filter(pk=rule.pk).exists()
    operator.post(url, {"confirm": "yes"})
    assert not NotificationRule.objects.filter(pk=rule.pk).exists()


def test_a_viewer_is_not_asked_and_deletes_nothing(client):
    channel = Channel.objects.create(name="team", url=SLACK_URL)
    client.force_login(user("vera", "viewer"))
    url = reverse("notification-channel-delete", args=[channel.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"confirm": "yes"}).status_code == 403
    assert Channel.objects.filter(pk=channel.pk).exists()


def test_send_a_test_reaches_the_channel_through_the_outbound_guard_and_is_audited_first(operator):
    with receiver() as hook:
        channel = Channel.objects.create(name="team", kind=Channel.Kind.JSON, url=hook.url + "/hook", signing_key="k")
        page = operator.get(reverse("notifications")).content.decode()
        test_url = reverse("notification-channel-test", args=[channel.pk])
        assert f'action="{test_url}"' in page
        response = operator.post(test_url, follow=True)
        [received] = hook.wait_for(1)
    assert b"A test notice went to team" in response.content
    body = json.loads(received.body)
    assert body["test"] is True and "test notice" in body["subject"]
    assert received.headers[SIGNATURE_HEADER] == signature("k", received.body)
    [entry] = AuditEvent.objects.filter(action=AuditEvent.Action.NOTIFICATION_TEST)
    assert entry.actor == "olga" and entry.object_name == "team"
    channel.refresh_from_db()
    assert channel.last_success_at is not None and not channel.failing


def test_a_test_to_a_failing_receiver_says_why_and_marks_the_channel(operator):
    with receiver() as hook:
        hook.status = 500
        channel = Channel.objects.create(name="team", url=hook.url + "/hook")
        response = operator.post(reverse("notification-channel-test", args=[channel.pk]), follow=True)
    assert b"The test notice to team failed" in response.content
    channel.refresh_from_db()
    assert channel.failing
    assert AuditEvent.objects.filter(action=AuditEvent.Action.NOTIFICATION_TEST).count() == 1, (
        "audited though it failed"
    )


def test_a_test_never_reaches_an_address_the_guard_refuses(operator, settings):
    with receiver() as hook:
        channel = Channel.objects.create(name="team", url=hook.url + "/hook")
        settings.DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS = []  # an installation that allows no inward range
        response = operator.post(reverse("notification-channel-test", args=[channel.pk]), follow=True)
        assert hook.requests == []
    assert b"The test notice to team failed" in response.content
    assert b"loopback" in response.content


def test_a_viewer_may_not_send_a_test_and_is_audited(client):
    with receiver() as hook:
        channel = Channel.objects.create(name="team", url=hook.url + "/hook")
        client.force_login(user("vera", "viewer"))
        assert client.post(reverse("notification-channel-test", args=[channel.pk])).status_code == 403
        assert hook.requests == []
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED, actor="vera").exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.NOTIFICATION_TEST).exists()


def test_a_test_is_post_only(operator):
    channel = Channel.objects.create(name="team", url=SLACK_URL)
    assert operator.get(reverse("notification-channel-test", args=[channel.pk])).status_code == 405
    assert operator.post(reverse("notification-channel-test", args=[channel.pk + 1000])).status_code == 404
