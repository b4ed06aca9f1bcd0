"""What a page does when the server's answer changes under it: a role taken away while the page is open,
a session that expires while the page polls. Facts come straight from Postgres: no cluster is needed."""

import re

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from playwright.sync_api import Page, expect

from drift.models import AuditEvent, Membership, Rollout
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, Facts, user

pytestmark = pytest.mark.browser


@pytest.fixture
def stale_workload(transactional_db) -> Facts:
    facts = Facts.for_cluster()
    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    facts.pod("env-demo", "env-demo-a", [{"source_name": "env-config"}])
    facts.run()
    return facts


def test_a_role_taken_away_while_the_page_is_open_gets_a_visible_403(page: Page, stale_workload):
    user("olga", "operator", password=PASSWORD)
    log_in(page, "olga")
    page.goto(reverse("workload", args=["local", "demo", "Deployment", "env-demo"]))
    button = page.get_by_role("button", name=re.compile(r"^Roll out"))
    expect(button).to_be_visible()

    Membership.objects.filter(user__username="olga").update(role="viewer")
    button.click()

    expect(page.get_by_role("alert")).to_contain_text("Not allowed (403)")
    expect(page.locator("#rollout-panel")).to_be_empty()
    screenshot(page, "30-role-revoked-403")
    assert AuditEvent.objects.filter(action="access.denied", actor="olga").count() == 1
    assert not Rollout.objects.exists()


def test_an_expired_session_sends_the_page_to_the_login_form(page: Page, stale_workload):
    user("vera", "viewer", password=PASSWORD)
    log_in(page, "vera")
    page.goto(reverse("workload", args=["local", "demo", "Deployment", "env-demo"]))
    expect(page.locator("#workload-pods")).to_contain_text("env-demo-a")

    Session.objects.all().delete()

    # The pods table polls every 5 seconds; its next answer is the login page, which takes the whole tab.
    expect(page).to_have_url(re.compile(r"/login/\?next="), timeout=20_000)
    expect(page.get_by_role("heading", name="Log in to Driftwatch")).to_be_visible()
    expect(page.locator("#workload-pods")).to_have_count(0)
