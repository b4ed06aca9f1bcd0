"""Django admin and the doors around the login: every change of a user, a role (membership), a cluster, a rollout
window or a notice made in the admin is audited with the admin as actor; cluster settings refuse values with a
surprising meaning; a failed CSRF check is audited and says so; repeated wrong passwords lock the login, audited;
logout is POST only; a multipart body is refused before it is read when it is too large (for anyone not logged
in, larger than a login form)."""

from __future__ import annotations

import html

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from dashboard.middleware import ANONYMOUS_MULTIPART_MAX_BYTES
from drift.models import AuditEvent, Channel, Cluster, Membership, Notice, NotificationRule, RolloutWindow
from tests import upload_spy
from tests.facts import user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

SETTINGS = {
    "snapshot_interval_seconds": 30, "propagation_window_seconds": 120, "exec_concurrency": 4,
    "exec_timeout_seconds": 10, "api_requests_per_second": 20, "rollout_batch_size": 3, "file_probes": "auto", "reload_default": "unknown",
    "rollout_deadline_seconds": 1800, "reconcile_interval_seconds": 600, "ignored_config_maps": '["cluster-autoscaler-status"]',
}  # fmt: skip


@pytest.fixture
def admin_client(client):
    get_user_model().objects.create_superuser("root", password=None)
    client.force_login(get_user_model().objects.get(username="root"))
    return client


@pytest.fixture
def cluster():
    return Cluster.objects.create(name="prod", kubeconfig_path="/nonexistent/kubeconfig")


def cluster_form(**changes: object) -> dict[str, object]:
    return {"name": "prod", "kubeconfig_path": "/nonexistent/kubeconfig", "context": "", "rollout_annotation":
            "driftwatch.io/config-hash", "server_version": "", "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
            **SETTINGS, **changes}  # fmt: skip


def audited(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_adding_changing_and_deleting_a_user_in_the_admin_is_audited(admin_client):
    response = admin_client.post(
        reverse("admin:auth_user_add"),
        {"username": "alice", "password1": "a long unusual passphrase", "password2": "a long unusual passphrase",
         "usable_password": "true"},
    )  # fmt: skip
    assert response.status_code == 302
    alice = get_user_model().objects.get(username="alice")
    [created] = audited("user.created")
    assert (created.actor, created.object_kind, created.object_name) == ("root", "User", "alice")
    assert "a long unusual passphrase" not in str(created.detail) + created.message

    response = admin_client.post(
        reverse("admin:auth_user_change", args=[alice.pk]),
        {"username": "alice", "is_active": "on", "is_staff": "on", "date_joined_0": "2026-01-01",
         "date_joined_1": "00:00:00", "initial-date_joined_0": "2026-01-01", "initial-date_joined_1": "00:00:00"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    [changed] = audited("user.changed")
    assert changed.actor == "root"
    assert "Staff status" in changed.message and changed.detail["is_staff"] is True

    response = admin_client.post(reverse("admin:auth_user_delete", args=[alice.pk]), {"post": "yes"})
    assert response.status_code == 302
    [deleted] = audited("user.deleted")
    assert (deleted.actor, deleted.object_name) == ("root", "alice")


def test_a_role_given_or_changed_in_the_admin_is_audited(admin_client):
    bob = user("bob")
    response = admin_client.post(
        reverse("admin:drift_membership_add"), {"user": bob.pk, "role": "viewer", "namespaces": "[]"}
    )
    assert response.status_code == 302
    membership = Membership.objects.get(user=bob)
    response = admin_client.post(
        reverse("admin:drift_membership_change", args=[membership.pk]),
        {"user": bob.pk, "role": "operator", "namespaces": '["local/demo"]'},
    )
    assert response.status_code == 302
    added, changed = audited("user.role_changed")
    assert added.actor == changed.actor == "root"
    assert added.detail["role"] == "viewer"
    assert changed.detail == {
        "user": "bob",
        "role": "operator",
        "namespaces": ["local/demo"],
        "change": changed.detail["change"],
    }
    assert "Role" in changed.message


def test_cluster_settings_are_audited_and_refuse_surprising_values(admin_client, cluster):
    url = reverse("admin:drift_cluster_change", args=[cluster.pk])
    for field, value, message in [
        ("api_requests_per_second", 0, "Give a value from 1 to 1000 requests per second. 0 would mean no limit"),
        ("api_requests_per_second", 10**9, "Give a value from 1 to 1000 requests per second."),
        ("snapshot_interval_seconds", 0, "Give a value from 5 to 86400 seconds."),
        ("exec_concurrency", 0, "Give a value from 1 to 64 probes at once. 0 would probe nothing."),
        ("exec_timeout_seconds", 100_000, "Give a value from 1 to 300 seconds."),
        ("propagation_window_seconds", 0, "Give a value from 1 to 3600 seconds."),
        ("rollout_batch_size", 0, "Give a value from 1 to 100 workloads per batch."),
        ("rollout_deadline_seconds", 0, "Give a value from 1 to 604800 seconds. At most one week."),
    ]:
        response = admin_client.post(url, cluster_form(**{field: value}))
        assert response.status_code == 200, field  # the form again, with the message
        assert message in html.unescape(response.content.decode()), field
    cluster.refresh_from_db()
    assert cluster.api_requests_per_second == 20 and cluster.snapshot_interval_seconds == 30
    assert audited("cluster.changed") == []

    response = admin_client.post(url, cluster_form(api_requests_per_second=50))
    assert response.status_code == 302, response.context["adminform"].form.errors
    [changed] = audited("cluster.changed")
    assert (changed.actor, changed.cluster_name, changed.detail["api_requests_per_second"]) == ("root", "prod", 50)

    response = admin_client.post(reverse("admin:drift_cluster_delete", args=[cluster.pk]), {"post": "yes"})
    assert response.status_code == 302
    [removed] = audited("cluster.removed")
    assert (removed.actor, removed.cluster_name) == ("root", "prod")


def test_a_failed_csrf_check_is_audited_and_the_page_says_so():
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user("olga", "operator"))
    response = browser.post(reverse("rollout-plan"), {"cluster": "local", "namespace": "demo"})
    assert response.status_code == 403
    content = response.content.decode()
    assert "security token (CSRF) was missing or did not match" in content
    assert "The attempt was recorded in the audit log." in content
    [event] = audited("access.csrf_failed")
    assert event.actor == "olga"
    assert event.detail["path"] == "/rollouts/plan/" and "CSRF" in event.message


def test_an_over_long_form_field_is_400_not_500(client):
    response = client.post(reverse("login"), {"username": "u" * 10_000, "password": "x"})
    assert response.status_code == 400
    assert "The form field 'username' is longer than 4096 characters." in response.content.decode()
    assert not AuditEvent.objects.filter(action="user.login_failed").exists()


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AXES_FAILURE_LIMIT = 3


def test_repeated_wrong_passwords_lock_the_login_and_are_audited(client, fast_hashing):
    user("vera", "viewer", password="the right passphrase")
    for _ in range(3):
        response = client.post(reverse("login"), {"username": "vera", "password": "wrong"})
    assert response.status_code == 429
    assert "Login locked" in response.content.decode()
    # Locked: even the right password is refused now, and the page says why.
    response = client.post(reverse("login"), {"username": "vera", "password": "the right passphrase"})
    assert response.status_code == 429
    content = html.unescape(response.content.decode())
    assert "Too many failed logins from this address (3, whatever the user names)." in content
    assert "locked for 0:15:00" in content
    assert "_auth_user_id" not in client.session
    assert len(audited("user.login_failed")) == 4  # the existing audit keeps working
    locked = audited("user.locked_out")
    assert locked and all(event.actor == "vera" for event in locked)
    assert "locked out after 3 failed logins from 127.0.0.1" in locked[0].message
    # The address is locked, whatever name it tries; from another address, another user logs in.
    user("olga", "operator", password="another passphrase")
    response = client.post(reverse("login"), {"username": "olga", "password": "another passphrase"})
    assert response.status_code == 429
    response = Client(REMOTE_ADDR="192.0.2.10").post(
        reverse("login"), {"username": "olga", "password": "another passphrase"}
    )
    assert response.status_code == 302
    assert audited("user.login")[0].actor == "olga"


def test_a_long_user_name_under_the_request_bound_is_a_failed_login_not_a_500(client, fast_hashing):
    response = client.post(reverse("login"), {"username": "u" * 4_000, "password": "x"})
    assert response.status_code == 200
    assert "Wrong user name or password." in response.content.decode()
    response = client.post(reverse("login"), {"username": "u" * 151, "password": "x"})
    assert response.status_code == 200


def test_a_user_change_outside_the_admin_is_recorded_with_who_ran_it():
    from drift.audit import record_user_change

    record_user_change(
        "root (manage.py adduser)", "carol", AuditEvent.Action.USER_CREATED, "user carol created as operator",
        detail={"role": "operator", "scope": ["local/demo"]},
    )  # fmt: skip
    [event] = audited("user.created")
    assert (event.actor, event.object_kind, event.object_name) == ("root (manage.py adduser)", "User", "carol")
    assert event.detail == {"role": "operator", "scope": ["local/demo"]}


def test_rollout_window_changes_in_the_admin_are_audited(admin_client, cluster):
    form = {"cluster": cluster.pk, "namespace": "shop", "weekdays": "01234", "start": "09:00", "end": "17:00"}
    assert admin_client.post(reverse("admin:drift_rolloutwindow_add"), form).status_code == 302
    window = RolloutWindow.objects.get()
    changed = {**form, "end": "12:00"}
    assert admin_client.post(reverse("admin:drift_rolloutwindow_change", args=[window.pk]), changed).status_code == 302
    url = reverse("admin:drift_rolloutwindow_delete", args=[window.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    added, edited, deleted = audited("cluster.changed")
    assert {added.actor, edited.actor, deleted.actor} == {"root"}
    assert (added.object_kind, added.cluster_name, added.namespace) == ("RolloutWindow", "prod", "shop")
    assert edited.detail["end"] == "12:00" and "End" in edited.message
    assert "deleted rolloutwindow" in deleted.message


def test_notice_changes_in_the_admin_are_audited(admin_client):
    rule = NotificationRule.objects.create(
        name="stale", channel=Channel.objects.create(name="team", url="https://a.test/")
    )
    notice = Notice.objects.create(rule=rule, key="local/demo/Deployment/web", subject="web stale", text="t",
                                   cluster="local", namespace="demo", status=Notice.Status.FAILED)  # fmt: skip
    url = reverse("admin:drift_notice_change", args=[notice.pk])
    form = {"rule": rule.pk, "key": notice.key, "cluster": "local", "namespace": "demo", "subject": "web stale",
            "text": "t", "detail": "{}", "opened_at_0": "2026-01-01", "opened_at_1": "00:00:00", "status": "sending",
            "sends": 0, "attempts": 0}  # fmt: skip
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert admin_client.post(reverse("admin:drift_notice_delete", args=[notice.pk]), {"post": "yes"}).status_code == 302
    changed, deleted = audited("notification.channel")
    assert (changed.actor, changed.object_kind, changed.cluster_name, changed.namespace) == (
        "root",
        "Notice",
        "local",
        "demo",
    )
    assert changed.detail["status"] == "sending" and "Status" in changed.message
    assert deleted.actor == "root" and "deleted notice" in deleted.message


def test_logout_is_post_only(client):
    client.force_login(user("vera", "viewer"))
    # A cross-site link or image can only GET: that logs nobody out.
    assert client.get(reverse("logout")).status_code == 405
    assert client.get(reverse("overview")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("overview")).status_code == 302  # to the login page


@pytest.fixture
def upload_spy_on(settings):
    settings.FILE_UPLOAD_HANDLERS = ["tests.upload_spy.RecordingUploadHandler"]
    upload_spy.PARSED.clear()
    yield upload_spy.PARSED
    upload_spy.PARSED.clear()


def multipart(size: int) -> tuple[bytes, str]:
    boundary = "driftwatch-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"x" * size
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("path", ["/login/", "/notifications/channels/", "/kubernetes-audit/prod"])
def test_an_anonymous_multipart_body_is_refused_before_it_is_read(path, upload_spy_on):
    body, content_type = multipart(ANONYMOUS_MULTIPART_MAX_BYTES)
    response = Client(enforce_csrf_checks=True).generic("POST", path, body, content_type=content_type)
    assert response.status_code == 403
    assert "multipart" in response.content.decode()
    assert upload_spy_on == []


def test_a_multipart_body_over_the_limit_is_refused_by_its_length_before_it_is_read(client, settings, upload_spy_on):
    client.force_login(user("olga", "operator"))
    body, content_type = multipart(10_000)
    declared = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
    response = client.generic("POST", "/notifications/channels/", body, content_type=content_type,
                              CONTENT_LENGTH=str(declared))  # fmt: skip
    assert response.status_code == 413
    assert upload_spy_on == []
    # Within the limit it is parsed as before (in memory: nothing accepted is larger than the memory limit).
    response = client.generic("POST", "/notifications/channels/", body, content_type=content_type)
    assert response.status_code == 400 and upload_spy_on == ["/notifications/channels/"]


def test_an_accepted_upload_never_spools_to_disk():
    from django.conf import settings

    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE >= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert settings.FILE_UPLOAD_HANDLERS == ["django.core.files.uploadhandler.MemoryFileUploadHandler"]
