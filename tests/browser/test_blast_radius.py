"""What did this change do, in a real browser: from a ConfigMap's page to a version's page, the pod that crashed
on the bad version named with its reason, the window changed in the form, a bad window said plainly, and the
moment a pod took the version up opened in point in time."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from drift.models import ContainerInstance
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, Facts, user

pytestmark = [pytest.mark.browser]


@pytest.fixture
def bad_edit(transactional_db):
    """app-config #1 an hour ago, #2 (bad) 20 minutes ago; crash-c started on #2 15 minutes ago, its run ended
    with exit code 3 a minute later and the kubelet started it again (CrashLoopBackOff)."""
    facts = Facts.for_cluster()
    for minutes in range(70, 0, -1):
        facts.run(minutes_ago=minutes - 0.5)
    facts.source("app-config", (60, {"mode": "good"}), (20, {"mode": "bad"}))
    facts.old = facts.pod("payments", "old-a", [{"source_name": "app-config"}], started_minutes_ago=50)
    facts.crash = facts.pod("payments", "crash-c", [{"source_name": "app-config"}], started_minutes_ago=15)
    ContainerInstance.objects.filter(pod=facts.crash).update(
        running=False, termination_reason="Error", exit_code=3, finished_at=facts.at(14)
    )
    ContainerInstance.objects.create(
        pod=facts.crash, name="app", container_id="second", first_seen=facts.at(13), waiting_reason="CrashLoopBackOff"
    )
    return facts


def test_from_the_config_map_to_what_the_bad_version_did(page: Page, bad_edit):
    user("lead", "viewer", ["local/demo"], password=PASSWORD)
    log_in(page, "lead")
    page.goto(reverse("source", args=["local", "demo", "configmaps", "app-config"]))
    expect(page.locator("#source-live .troubled")).to_have_text("1 crashed or restarted")
    expect(page.locator(".edit-effect").first).to_contain_text("needs a restart")
    screenshot(page, "39-source-what-each-version-did")

    page.get_by_role("link", name="What did #2 do?").click()

    expect(page.get_by_role("heading", name="What did #2 do?")).to_be_visible()
    troubled = page.locator(f'#troubled li[data-pod-uid="{bad_edit.crash.uid}"]')
    expect(troubled).to_contain_text("crash-c")
    expect(troubled).to_contain_text("Error, exit code 3")
    expect(troubled).to_contain_text("CrashLoopBackOff")
    expect(page.locator(f'#picked-up tr[data-pod-uid="{bad_edit.old.uid}"]')).to_have_count(0)
    screenshot(page, "40-what-did-it-do")

    # The crash came a minute after crash-c took #2 up: a window of 1 minute still holds it; the URL keeps it.
    page.get_by_label(re.compile("Trouble within")).fill("1")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"[?&]within=1\b"))
    expect(troubled).to_contain_text("Error, exit code 3")

    page.goto(page.url.replace("within=1", "within=99999"))
    expect(page.locator("#within-error")).to_contain_text("from 1 to 1440")

    page.locator(f'#picked-up tr[data-pod-uid="{bad_edit.crash.uid}"]').get_by_role(
        "link", name="what ran just after"
    ).click()
    expect(page.locator("#as-of")).to_contain_text("As of")
    expect(page.locator(f'tr[data-pod-uid="{bad_edit.crash.uid}"]')).to_contain_text("#2")
