"""Pages work under the Content-Security-Policy: the overview polls (and holds its poll while a workload is ticked
for a bulk rollout), its filters swap in with htmx, a form submits, and the browser reports no violation of the
policy nor an htmx refusal to evaluate; htmx keeps no page in the browser's storage; logout is a POST from the nav.
Facts come straight from Postgres: no cluster is needed."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import reverse
from playwright.sync_api import ConsoleMessage, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from drift.models import Channel
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, Facts, user

pytestmark = pytest.mark.browser

# Chromium says so on the console for every refused script, style, eval or connection; htmx logs its own
# refusal to evaluate a trigger filter (htmx:evalDisallowedError) as an error too.
VIOLATION = re.compile(r"Content Security Policy|evalDisallowed|unsafe-eval|EvalError", re.IGNORECASE)


@pytest.fixture
def stale_workload(transactional_db) -> Facts:
    facts = Facts.for_cluster()
    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    facts.pod("env-demo", "env-demo-a", [{"source_name": "env-config"}])
    facts.run()
    return facts


@pytest.fixture
def violations(page: Page) -> Iterator[list[str]]:
    seen: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning") and VIOLATION.search(message.text):
            seen.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: seen.append(f"uncaught: {error}"))
    yield seen


def overview_polls(page: Page) -> bool:
    """Whether the overview's body asks the server again within its 10 s (then waits for the answer to be
    swapped in, so that what the test does next is not undone by it)."""
    try:
        with page.expect_response(
            lambda response: (
                response.request.headers.get("hx-request") == "true" and "/source-names/" not in response.url
            ),
            timeout=13_000,
        ):
            pass
    except PlaywrightTimeout:
        return False
    page.wait_for_timeout(500)
    return True


def test_the_overview_and_a_form_work_under_the_policy(page: Page, stale_workload, violations, settings):
    user("olga", "operator", password=PASSWORD)
    log_in(page, "olga")  # the login form is a form submitted under the policy too
    response = page.goto(reverse("overview"))
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_role("link", name="env-demo")).to_be_visible()

    # It polls, and holds while a workload is ticked for a bulk rollout (a condition once written as a
    # trigger filter that htmx evaluates, which the policy forbids).
    assert overview_polls(page)
    page.locator("input[form=bulk-form]").first.check()
    assert not overview_polls(page)
    expect(page.locator("input[form=bulk-form]").first).to_be_checked()
    page.locator("input[form=bulk-form]").first.uncheck()
    assert overview_polls(page)

    # A filter swaps the body in with htmx and pushes the URL; no page is kept in storage for history.
    page.get_by_label("Search").fill("env-demo")
    expect(page).to_have_url(re.compile(r"q=env-demo"))
    expect(page.get_by_role("link", name="env-demo")).to_be_visible()
    # htmx notes the current path for its history; the page itself is not kept.
    assert page.evaluate("Object.keys(sessionStorage).concat(Object.keys(localStorage))") in (
        [],
        ["htmx-current-path-for-history"],
    )

    # A plain form (add a channel) submits and the page shows its result.
    page.goto(reverse("notifications"))
    page.get_by_label("Name").first.fill("team")
    page.get_by_label("Url").fill("https://hooks.example.test/T0/B0/secret")
    page.get_by_role("button", name="Add channel").click()
    expect(page.get_by_role("cell", name="hooks.example.test")).to_be_visible()
    assert Channel.objects.filter(name="team").exists()
    screenshot(page, "40-notifications-under-csp")

    # Logout is the nav's form (POST); the login page follows.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to Driftwatch")).to_be_visible()
    # Only the login page's own path, noted again as it loads: nothing of the session.
    assert page.evaluate("Object.entries(sessionStorage).concat(Object.entries(localStorage))") in (
        [],
        [["htmx-current-path-for-history", "/login/"]],
    )
    assert violations == []

    # The listener does hear a violation: an inline script is refused, and said so.
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.ranInline = 1';
                             document.body.append(s); }""")
    expect(page.locator("body")).to_be_visible()
    page.wait_for_timeout(200)
    assert page.evaluate("window.ranInline") is None
    assert violations and "Content Security Policy" in violations[0]


def test_django_admin_works_under_the_policy(page: Page, transactional_db, violations):
    root = user("root", password=PASSWORD)
    root.is_staff = root.is_superuser = True
    root.save()
    log_in(page, "root")
    page.goto("/admin/drift/channel/add/")
    page.get_by_label("Name").fill("ops")
    page.get_by_label("Url").fill("https://hooks.example.test/ops")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("was added successfully")).to_be_visible()
    page.goto("/admin/drift/rolloutwindow/add/")  # a form with time widgets (the admin's own scripts)
    expect(page.get_by_label("Start")).to_be_visible()
    screenshot(page, "41-admin-under-csp")
    assert violations == []


def test_the_pod_and_source_pages_poll_under_the_policy(page: Page, stale_workload, violations):
    user("vera", "viewer", password=PASSWORD)
    log_in(page, "vera")
    for url, target in (
        (reverse("pod", args=["local", "demo", "env-demo-a"]), "pod-body"),
        (reverse("source", args=["local", "demo", "configmaps", "env-config"]), "source-live"),
    ):
        page.goto(url)
        with page.expect_response(
            lambda response, target=target: response.request.headers.get("hx-target") == target, timeout=10_000
        ) as polled:
            pass
        assert polled.value.status in (200, 204), polled.value.status
    assert violations == []
