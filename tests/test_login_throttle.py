"""The login throttle: failures are counted per account name and per client address. An address that fails
too often is blocked; an account that fails too often, from wherever, only pauses, so a flood from many
addresses cannot keep its owner (the break-glass admin) out. The client address is the socket's peer, or the
address our own trusted proxy added to X-Forwarded-For, never the head a client can write."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.test import Client
from django.urls import reverse

from drift.models import AuditEvent
from tests.facts import user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

INGRESS = "10.0.0.2"
ADMIN_PASSWORD = "the break-glass passphrase"


@pytest.fixture
def throttle(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DRIFTWATCH_LOGIN_FAILURE_LIMIT = 3
    settings.DRIFTWATCH_LOGIN_PAUSE_SECONDS = 60
    settings.AXES_FAILURE_LIMIT = 4  # per address


def log_in(username: str, password: str, address: str = "127.0.0.1", forwarded: str | None = None):
    headers = {"REMOTE_ADDR": address}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return Client().post(reverse("login"), {"username": username, "password": password}, **headers)


def let_the_pause_pass(settings) -> None:
    """As if the pause's length had gone by: every counted failure is moved that far into the past."""
    ago = timedelta(seconds=settings.DRIFTWATCH_LOGIN_PAUSE_SECONDS + 1)
    for failure in AccessFailureLog.objects.all():
        failure.attempt_time -= ago
        failure.save(update_fields=["attempt_time"])


class FakeRequest:
    def __init__(self, peer: str, forwarded: str | None = None) -> None:
        self.META = {"REMOTE_ADDR": peer}
        if forwarded is not None:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded


@pytest.mark.parametrize(
    ("proxies", "peer", "forwarded", "expected"),
    [
        # No trusted proxy: the socket's peer, whatever the client wrote.
        (0, "192.0.2.1", "203.0.113.9", "192.0.2.1"),
        (0, "192.0.2.1", None, "192.0.2.1"),
        # One proxy (the ingress): the address it appended, not the head the client sent ahead of it.
        (1, INGRESS, "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        (1, INGRESS, "203.0.113.9", "203.0.113.9"),
        # Two proxies (a load balancer, then the ingress): the one the outer proxy appended.
        (2, INGRESS, "6.6.6.6, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
        # Fewer hops than trusted proxies (someone reached us around them): the peer.
        (2, INGRESS, "203.0.113.9", INGRESS),
        # A value that is no address: the peer.
        (1, INGRESS, "6.6.6.6, not-an-address", INGRESS),
        (1, INGRESS, "6.6.6.6, 2001:db8::7 ", "2001:db8::7"),
    ],
)
def test_the_client_address_is_the_peer_or_what_our_own_proxy_added(settings, proxies, peer, forwarded, expected):
    from dashboard.auth import client_address

    settings.DRIFTWATCH_TRUSTED_PROXIES = proxies
    assert client_address(FakeRequest(peer, forwarded)) == expected


def test_behind_a_trusted_proxy_a_failure_is_stored_with_the_address_the_proxy_added(settings, throttle):
    settings.DRIFTWATCH_TRUSTED_PROXIES = 1
    log_in("nobody", "wrong", address=INGRESS, forwarded="6.6.6.6, 203.0.113.9")

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["203.0.113.9"]


def test_a_forged_x_forwarded_for_is_ignored_without_a_trusted_proxy(throttle):
    log_in("nobody", "wrong", address="192.0.2.1", forwarded="203.0.113.9")

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["192.0.2.1"]


def test_a_flood_through_the_ingress_only_pauses_the_break_glass_admin(settings, throttle):
    settings.DRIFTWATCH_TRUSTED_PROXIES = 1
    user("breakglass", "operator", password=ADMIN_PASSWORD)
    for number in range(3):
        log_in("breakglass", "guess", address=INGRESS, forwarded=f"198.51.100.{number}")

    # The account pauses for everyone (the guessing stops), and says for how long.
    paused = log_in("breakglass", ADMIN_PASSWORD, address=INGRESS, forwarded="203.0.113.9")
    assert paused.status_code == 429
    assert "Login for breakglass paused" in paused.content.decode()
    assert 0 < int(paused["Retry-After"]) <= 60
    refused = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_LOCKED_OUT).latest("id")
    assert refused.message == "login refused: breakglass paused for 60 s after 3 failed logins from any address"
    # Attempts refused during the pause do not lengthen it.
    for number in range(10):
        log_in("breakglass", "guess", address=INGRESS, forwarded=f"198.51.100.{50 + number}")

    let_the_pause_pass(settings)
    admin = log_in("breakglass", ADMIN_PASSWORD, address=INGRESS, forwarded="203.0.113.9")
    assert admin.status_code == 302 and admin["Location"] == reverse("overview")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN, actor="breakglass").count() == 1


def test_an_address_that_fails_too_often_is_blocked_for_every_account_and_others_are_not(throttle):
    user("olga", "operator", password="another passphrase")
    for name in ("ann", "ben", "cid", "dan"):  # one failure each: no account pauses, the address adds up
        log_in(name, "guess", address="198.51.100.7")

    blocked = log_in("olga", "another passphrase", address="198.51.100.7")
    assert blocked.status_code == 429
    assert "from this address" in blocked.content.decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_LOCKED_OUT).exists()

    elsewhere = log_in("olga", "another passphrase", address="203.0.113.9")
    assert elsewhere.status_code == 302


def test_a_successful_login_does_not_wipe_its_address_failures(throttle):
    # Whoever knows one password could otherwise guess at other names on and on, logging in between the guesses.
    user("mallory", "viewer", password="mallory's own passphrase")
    for name in ("ann", "ben", "cid"):
        log_in(name, "guess", address="198.51.100.7")
    assert log_in("mallory", "mallory's own passphrase", address="198.51.100.7").status_code == 302

    log_in("dan", "guess", address="198.51.100.7")

    assert log_in("mallory", "mallory's own passphrase", address="198.51.100.7").status_code == 429
