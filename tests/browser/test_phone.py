"""Every page at a phone's width (390 px) and a desktop's (1440 px): nothing wider than the window (no sideways
scroll), and the navigation, Log out included, visible and usable. A screenshot of each page at both widths lands in
artifacts/screenshots/ (phone-*.png, desktop-*.png) to be looked at. Facts come straight from Postgres, with names
and texts as long as real clusters have: no cluster is needed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from drift import audit
from drift.models import AuditEvent, Channel, NotificationRule, Rollout
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, Facts, user

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 1000}
LONG_VALUE = "upstream=" + ",".join(f"backend-{index}.payments.svc.cluster.local:8443" for index in range(12))


@pytest.fixture
def demo(transactional_db) -> dict[str, str]:
    """A stale env workload, a volume consumer, a long ConfigMap value, a finished rollout, audit entries, a channel
    and a rule: each page with the parts that grow widest. Returns the path of every page."""
    facts = Facts.for_cluster("production-eu-west-1")
    facts.cluster.api_server = "api.production-eu-west-1.k8s.example.com:6443"
    facts.cluster.save()
    facts.source(
        "payments-gateway-config",
        (90, {"log_level": "INFO", "upstreams": LONG_VALUE}),
        (10, {"log_level": "DEBUG", "upstreams": LONG_VALUE + ",backend-12.payments.svc.cluster.local:8443"}),
        namespace="payments",
    )
    for suffix in ("7c9f8d6b5-x2kqp", "7c9f8d6b5-m8tzr"):
        facts.pod(
            "payments-gateway", f"payments-gateway-{suffix}", [{"source_name": "payments-gateway-config"}],
            namespace="payments",
        )  # fmt: skip
    facts.pod(
        "payments-gateway-volume-reader", "payments-gateway-volume-reader-5d4f7b9c8-qq2wn",
        [{"source_name": "payments-gateway-config", "mode": "volume", "mount_path": "/etc/payments-gateway/config.d"}],
        namespace="payments",
    )  # fmt: skip
    facts.run(counts={"stale": 2, "fresh": 1})
    rollout = Rollout.objects.create(
        cluster=facts.cluster, kind="Deployment", namespace="payments", name="payments-gateway",
        requested_by="olga.operator@example.com", annotation_key="driftwatch.io/config-hash",
        config_hash="0" * 64, status=Rollout.Status.COMPLETE, desired=2, updated=2, ready=2, available=2,
        finished_at=timezone.now(), patched_at=timezone.now(),
    )  # fmt: skip
    batch = uuid.uuid4()
    for name, status in (
        ("payments-gateway", Rollout.Status.IN_PROGRESS),
        ("payments-gateway-volume-reader", "queued"),
    ):
        Rollout.objects.create(
            cluster=facts.cluster, kind="Deployment", namespace="payments", name=name, batch=batch,
            requested_by="olga.operator@example.com", annotation_key="driftwatch.io/config-hash", status=status,
            desired=2, updated=1, ready=1, available=1,
        )  # fmt: skip
    audit.record(
        "alice.longname@example.com", AuditEvent.Action.CONFIG_AUTHOR,
        "ConfigMap payments/payments-gateway-config changed by alice.longname@example.com via kubectl-patch",
        cluster_name=facts.cluster.name, namespace="payments", object_kind="ConfigMap",
        object_name="payments-gateway-config", detail={"resource_version": "1"},
    )  # fmt: skip
    audit.record(
        "olga.operator@example.com", AuditEvent.Action.ROLLOUT_COMPLETED,
        "rollout of Deployment/payments-gateway -n payments complete: 2 pods replaced (RollingUpdate)",
        cluster_name=facts.cluster.name, namespace="payments", object_kind="Deployment",
        object_name="payments-gateway", detail={"rollout": rollout.pk},
    )  # fmt: skip
    channel = Channel.objects.create(
        name="payments-oncall", url=f"https://hooks.slack.test/services/{uuid.uuid4().hex}",
        last_error="HTTP 500 from hooks.slack.test", last_failure_at=timezone.now(),
    )  # fmt: skip
    NotificationRule.objects.create(name="payments-stale-for-long", channel=channel, namespace="payments")
    cluster = facts.cluster.name
    return {
        "overview": reverse("overview"),
        "workload": reverse("workload", args=[cluster, "payments", "Deployment", "payments-gateway"]),
        "pod": reverse("pod", args=[cluster, "payments", "payments-gateway-7c9f8d6b5-x2kqp"]),
        "source": reverse("source", args=[cluster, "payments", "configmaps", "payments-gateway-config"]),
        "audit": reverse("audit"),
        "volume-pod": reverse("pod", args=[cluster, "payments", "payments-gateway-volume-reader-5d4f7b9c8-qq2wn"]),
        "rollout": reverse("rollout", args=[rollout.pk]),
        "rollout-batch": reverse("rollout-batch", args=[batch]),
        "notifications": reverse("notifications"),
        "notification-delete": reverse("notification-channel-delete", args=[channel.pk]),
    }


@pytest.fixture(params=[PHONE, DESKTOP], ids=["phone", "desktop"])
def sized_page(request, browser: Browser, live_server: LiveServer, plain_http: None) -> Iterator[tuple[Page, str]]:
    width = "phone" if request.param is PHONE else "desktop"
    context = browser.new_context(base_url=live_server.url, viewport=request.param)
    context.set_default_timeout(20_000)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: pytest.fail(f"a page opened a dialog: {dialog.message}"))
    yield tab, width
    context.close()


def overflow(page: Page) -> dict[str, object]:
    """How much wider than the window the page is, and the widest elements that stick out (for the message)."""
    return page.evaluate(
        """() => {
            const width = window.innerWidth;
            const out = [...document.querySelectorAll('body *')]
                .filter(el => el.getBoundingClientRect().right > width + 0.5)
                .slice(0, 5)
                .map(el => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : ''} right=${Math.round(el.getBoundingClientRect().right)}`);
            return {scroll: document.documentElement.scrollWidth, inner: width, out};
        }"""
    )


def too_wide(page: Page, name: str) -> list[str]:
    seen = overflow(page)
    if seen["scroll"] <= seen["inner"]:  # type: ignore[operator]
        return []
    return [f"{name} is {seen['scroll']} px wide in {seen['inner']}: {seen['out']}"]


def test_every_page_fits_the_window_and_the_navigation_with_log_out_is_reachable(sized_page, demo, live_server):
    page, width = sized_page
    page.goto(reverse("login"))
    problems = too_wide(page, "login")  # every page is looked at before the test fails, to say all that is wrong
    screenshot(page, f"{width}-login")

    user("olga", "operator", namespaces=["*/*"], password=PASSWORD)
    log_in(page, "olga")
    for name, path in demo.items():
        response = page.goto(path)
        assert response is not None and response.status == 200, f"{name}: {response and response.status}"
        page.wait_for_load_state("networkidle")
        problems += too_wide(page, name)
        navigation = page.get_by_role("navigation", name="Main")
        for link in ("Overview", "Audit log", "Notifications"):
            expect(navigation.get_by_role("link", name=link)).to_be_visible()
            expect(navigation.get_by_role("link", name=link)).to_be_in_viewport()
        log_out = page.get_by_role("button", name="Log out")
        expect(log_out).to_be_visible()
        expect(log_out).to_be_in_viewport()
        screenshot(page, f"{width}-{name}")
    assert not problems, "\n".join(problems)

    # Log out works from where it is shown (the last page visited).
    page.get_by_role("button", name="Log out").click()
    page.goto(reverse("overview"))
    expect(page).to_have_url(re.compile(r"/login/"))
