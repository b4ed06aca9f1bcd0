"""Delivering notices for real: a webhook receiver on loopback run by the test, an SMTP server (aiosmtpd) started
by the test; HMAC signatures, retries then failure (shown, audited), redirects to another host refused; a retry the
production way, through the Redis broker to a worker process; webhooks never aimed inward (loopback, link-local,
private ranges) unless the setting allows the range, and sent to the address that was checked.

The suite allows loopback (tests/settings.py) as an admin would, since its receivers listen there; the tests of
the default set the allowed ranges back to none."""

import hashlib
import hmac
import io
import itertools
import json
import socket
from collections.abc import Callable
from datetime import time
from ipaddress import ip_network
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as MessageHandler
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from drift.models import AuditEvent, Channel, Notice, NotificationRule, validate_webhook_url
from drift.notify.deliver import SIGNATURE_HEADER
from drift.notify.evaluate import within
from drift.tasks import NOTIFY_MAX_RETRIES, send_notice
from tests.kube_helpers import wait_until
from tests.receiver import receiver

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("start", "end", "moment", "quiet"),
    [
        (time(22), time(7), time(23), True),
        (time(22), time(7), time(6, 59), True),
        (time(22), time(7), time(7), False),
        (time(22), time(7), time(12), False),
        (time(12), time(13), time(12, 30), True),
        (time(12), time(13), time(13), False),
    ],
)
def test_quiet_hours_may_cross_midnight(start: time, end: time, moment: time, quiet: bool) -> None:
    assert within(start, end, moment) is quiet


@pytest.mark.parametrize(
    ("url", "valid"),
    [("https://hooks.example.test/x", True), ("http://127.0.0.1:8080/hook", True), ("file:///etc/passwd", False),
     ("gopher://example.test/", False), ("javascript:alert(1)", False), ("https:///nohost", False)],
)  # fmt: skip
def test_only_http_and_https_urls_are_accepted(url: str, valid: bool) -> None:
    if valid:
        validate_webhook_url(url)
    else:
        with pytest.raises(ValidationError):
            validate_webhook_url(url)


@pytest.fixture
def default_networks(settings):
    """What an installation allows with nothing set: no inward range at all."""
    settings.DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS = []
    settings.DRIFTWATCH_NOTIFY_DENIED_NETWORKS = []


@pytest.mark.parametrize(
    ("address", "allowed", "denied", "refused_as"),
    [
        ("127.0.0.1", [], [], "loopback"),
        ("127.255.0.9", [], [], "loopback"),
        ("::1", [], [], "loopback"),
        ("::ffff:127.0.0.1", [], [], "loopback"),
        ("2002:7f00:1::", [], [], "loopback"),  # 6to4 around 127.0.0.1
        ("169.254.169.254", [], [], "link-local"),  # cloud metadata
        ("64:ff9b::a9fe:a9fe", [], [], "link-local"),  # NAT64 around 169.254.169.254
        ("fe80::1", [], [], "link-local"),
        ("10.96.0.1", [], [], "private"),  # a cluster's kubernetes Service
        ("172.16.0.1", [], [], "private"),
        ("192.168.1.1", [], [], "private"),
        ("fd00::1", [], [], "private"),
        ("0.0.0.0", [], [], "unspecified"),
        ("100.64.0.1", [], [], "not public"),  # carrier-grade NAT, often pod networks
        ("224.0.0.1", [], [], "not public"),
        ("192.0.0.8", [], [], "not public"),
        ("93.184.215.14", [], [], None),
        ("2606:4700:4700::1111", [], [], None),
        ("127.0.0.1", ["127.0.0.0/8"], [], None),
        ("10.20.0.5", ["10.20.0.0/16"], [], None),
        ("10.0.0.5", ["127.0.0.0/8", "10.20.0.0/16"], [], "private"),
        ("93.184.215.14", [], ["93.184.215.0/24"], "denied"),
        ("10.96.0.1", ["10.0.0.0/8"], ["10.96.0.0/12"], "denied"),  # a denied range wins over an allowed one
    ],
)
def test_which_addresses_a_webhook_may_reach(address, allowed, denied, refused_as) -> None:
    from drift.notify.outbound import why_refused

    reason = why_refused(address, [ip_network(n) for n in allowed], [ip_network(n) for n in denied])
    if refused_as is None:
        assert reason is None
    else:
        assert reason is not None and refused_as in reason


@pytest.mark.parametrize("where", ["127.0.0.1", "::1", "localhost"])
def test_by_default_a_webhook_on_loopback_is_refused_before_it_connects(default_networks, where) -> None:
    with receiver("::1" if where == "::1" else "127.0.0.1") as hook:
        url = hook.url.replace("127.0.0.1", "localhost") if where == "localhost" else hook.url
        channel = Channel.objects.create(name="inward", kind="slack", url=url)
        assert send_notice.apply(args=(notice_for(channel).pk,)).get() == "failed"
        assert hook.requests == []
    channel.refresh_from_db()
    assert "loopback" in channel.last_error
    # A refusal is final: not tried again four times.
    assert Notice.objects.get().attempts == 1


def test_the_webhook_connects_to_the_address_it_checked(settings, monkeypatch) -> None:
    """DNS rebinding: a name that answers an allowed address when it is checked and an inward one afterwards.
    The request goes to the checked address, with the name in its Host header, and the name is resolved once."""
    settings.DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS = [ip_network("127.0.0.1/32")]
    resolve = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding_dns(host, *args, **kwargs):
        if host == "hooks.rebinding.test":
            lookups.append(host)
            host = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"  # 127.0.0.2: not allowed, nothing listens
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    with receiver() as hook:
        url = hook.url.replace("127.0.0.1", "hooks.rebinding.test")
        channel = Channel.objects.create(name="rebinding", kind="slack", url=url)
        assert send_notice.apply(args=(notice_for(channel).pk,)).get() == "sent"
        [request] = hook.wait_for(1)
    assert lookups == ["hooks.rebinding.test"]
    assert request.headers["Host"] == url.split("/")[2]


def self_signed(name: str, directory: Path) -> tuple[Path, Path]:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_over_https_the_pinned_connection_names_the_host_in_sni_and_checks_its_certificate(monkeypatch, tmp_path):
    """Connected to the checked address, TLS still speaks to the name: SNI carries it and the certificate is
    verified against it (not against the address, which it does not name)."""
    from drift.notify import outbound

    resolve = socket.getaddrinfo
    monkeypatch.setattr(
        socket, "getaddrinfo",
        lambda host, *args, **kwargs: resolve("127.0.0.1" if host == "hooks.pinned.test" else host, *args, **kwargs),
    )  # fmt: skip
    cert, key = self_signed("hooks.pinned.test", tmp_path)
    with receiver(tls=(cert, key)) as hook:
        url = hook.url.replace("127.0.0.1", "hooks.pinned.test")
        with outbound.session() as pinned:
            assert pinned.post(url, data=b"{}", verify=str(cert), timeout=10).status_code == 200
            # The same certificate does not name the address: connecting to it by address is refused.
            with pytest.raises(requests.exceptions.SSLError):
                pinned.post(hook.url, data=b"{}", verify=str(cert), timeout=10)
        [request] = hook.wait_for(1)
    assert hook.server_names[0] == "hooks.pinned.test"
    assert request.headers["Host"] == url.split("/")[2]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:8000/",
     "http://2130706433/", "http://0x7f.1/", "http://[::ffff:169.254.169.254]/", "http://10.96.0.1:443/"],
)  # fmt: skip
def test_an_inward_address_is_refused_when_the_channel_is_added(default_networks, url) -> None:
    with pytest.raises(CommandError, match="DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS"):
        call_command("notify", "channel", "add", "inward", "--webhook", url, stdout=io.StringIO())
    assert not Channel.objects.exists()


def notice_for(channel: Channel) -> Notice:
    rule = NotificationRule.objects.create(name="r", channel=channel)
    detail = {"event": "stale", "link": "http://driftwatch.test/workloads/1/confirm/", "stale_pods": 2}
    return Notice.objects.create(rule=rule, key="local/demo/Deployment/env-demo", subject="env-demo stale",
                                 text="2 pods stale", detail=detail, cluster="local", namespace="demo")  # fmt: skip


def test_a_json_webhook_is_signed_with_hmac_sha256() -> None:
    with receiver() as hook:
        out = io.StringIO()
        call_command("notify", "channel", "add", "team", "--webhook", hook.url, "--kind", "json", stdout=out)
        channel = Channel.objects.get(name="team")
        assert channel.signing_key in out.getvalue()
        assert send_notice.apply(args=(notice_for(channel).pk,)).get() == "sent"
        [request] = hook.wait_for(1)
    expected = "sha256=" + hmac.new(channel.signing_key.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER], expected)
    assert json.loads(request.body)["link"] == "http://driftwatch.test/workloads/1/confirm/"
    assert Notice.objects.get().status == Notice.Status.SENT


def test_a_failing_webhook_is_retried_then_marked_failed_and_audited() -> None:
    with receiver() as hook:
        hook.status = 500
        channel = Channel.objects.create(name="broken", kind="slack", url=hook.url)
        assert send_notice.apply(args=(notice_for(channel).pk,)).get() == "failed"
        assert len(hook.requests) == NOTIFY_MAX_RETRIES + 1
    channel.refresh_from_db()
    assert channel.failing and "HTTP 500" in channel.last_error
    assert Notice.objects.get().status == Notice.Status.FAILED
    audit = AuditEvent.objects.get(action=AuditEvent.Action.NOTIFICATION_FAILED)
    assert "broken" in audit.message and "HTTP 500" in audit.detail["reason"]
    # The audit log is read by viewers too: it names the host, never the URL nor what the host answered.
    assert "127.0.0.1" in audit.message and hook.url not in audit.message and "500" not in audit.message


@pytest.fixture
def quick_retry_worker(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Callable[[], str]:
    """A real worker process whose notices are retried after 1 s, then 2 s, ... (it reads the backoff from the
    environment it starts with, so this is set first); gives what the worker logged."""
    monkeypatch.setenv("DRIFTWATCH_NOTIFY_BACKOFF_SECONDS", "1")
    return request.getfixturevalue("celery_worker_log")


@pytest.mark.django_db(transaction=True)
def test_a_failed_delivery_is_retried_through_the_broker_and_delivered(quick_retry_worker) -> None:
    """The notice's task goes through Redis to a worker process, as in production; the receiver fails the first
    two attempts; each retry is a new message on the broker, sent after its backoff, and the third attempt
    delivers the notice. (The tests above run the task in this process, where a retry is a plain loop.)"""
    with receiver() as hook:
        hook.failures_before_status = 2
        channel = Channel.objects.create(name="flaky", kind="slack", url=hook.url)
        notice = notice_for(channel)
        task = send_notice.delay(notice.pk)
        wait_until(
            lambda: Notice.objects.get(pk=notice.pk).status == Notice.Status.SENT, timeout=90, what="the delivery"
        )
        requests = list(hook.requests)
    assert len(requests) == 3
    first_gap, second_gap = (later.at - earlier.at for earlier, later in itertools.pairwise(requests))
    assert first_gap >= 0.9 and second_gap >= 1.9, "each retry waited for its backoff, doubled the second time"
    notice.refresh_from_db()
    assert (notice.attempts, notice.last_error, notice.sends) == (3, "", 1)
    assert notice.delivered_at is not None
    channel.refresh_from_db()
    assert channel.last_error == "" and channel.last_success_at is not None
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.NOTIFICATION_FAILED).exists()

    log = quick_retry_worker()
    name = f"drift.tasks.send_notice[{task.id}]"
    assert log.count(f"{name} received") == 3, "the first try and each retry arrived from the broker"
    assert f"{name} retry: Retry in 1s" in log and f"{name} retry: Retry in 2s" in log
    assert log.count(f"{name} succeeded") == 1


def test_a_redirect_to_another_host_is_never_followed() -> None:
    with receiver() as hook, receiver() as elsewhere:
        hook.status, hook.location = 302, elsewhere.url.replace("127.0.0.1", "localhost")
        channel = Channel.objects.create(name="redirected", kind="slack", url=hook.url)
        assert send_notice.apply(args=(notice_for(channel).pk,)).get() == "failed"
        assert elsewhere.requests == []
    channel.refresh_from_db()
    assert "refused a redirect" in channel.last_error


def test_a_redirect_within_the_configured_host_is_followed() -> None:
    with receiver() as hook:
        channel = Channel.objects.create(name="moved", kind="slack", url=hook.url)
        hook.status, hook.location = 307, "/hook-moved"
        notice = notice_for(channel)
        # The first answer redirects; the second request (to /hook-moved) gets the redirect too, ... until the
        # limit: the receiver saw only its own host.
        assert send_notice.apply(args=(notice.pk,)).get() == "failed"
        assert {request.path for request in hook.requests} == {"/hook", "/hook-moved"}


def test_email_goes_through_django_mail_settings(settings) -> None:
    received: list = []

    class Collect(MessageHandler):
        def handle_message(self, message) -> None:
            received.append(message)

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        call_command("notify", "channel", "add", "mail", "--kind", "email", "--email", "ops@example.test",
                     stdout=io.StringIO())  # fmt: skip
        channel = Channel.objects.get(name="mail")
        assert send_notice.apply(args=(notice_for(channel).pk,)).get() == "sent"
    finally:
        controller.stop()
    [message] = received
    assert message["To"] == "ops@example.test"
    assert message["Subject"] == "env-demo stale"
    assert "http://driftwatch.test/workloads/1/confirm/" in message.get_payload()


def test_the_command_refuses_what_it_cannot_use() -> None:
    with pytest.raises(CommandError, match="http"):
        call_command("notify", "channel", "add", "bad", "--webhook", "file:///etc/passwd")
    with pytest.raises(CommandError, match="no channel"):
        call_command("notify", "rule", "add", "r", "--channel", "missing", "--when", "stale")
    call_command("notify", "channel", "add", "ok", "--webhook", "http://127.0.0.1:9/x", stdout=io.StringIO())
    with pytest.raises(CommandError, match="duration"):
        call_command("notify", "rule", "add", "r", "--channel", "ok", "--when", "stale", "--for", "ten")
    out = io.StringIO()
    call_command("notify", "rule", "add", "r", "--channel", "ok", "--when", "stale", "--for", "2h", stdout=out)
    assert NotificationRule.objects.get(name="r").for_minutes == 120
    with pytest.raises(CommandError, match="cannot connect"):
        call_command("notify", "test", "ok")
