"""What a team lead reads, in the browser: the audit log shows a change once, the person first, in words, with a link
to what changed; the notifications page asks before it deletes and sends a test to a channel (a receiver on
loopback, which the suite allows as an admin would). Facts come straight from Postgres: no cluster is needed."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from drift import audit
from drift.models import AuditEvent, Channel, NotificationRule
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, Facts, user
from tests.receiver import receiver

pytestmark = pytest.mark.browser


def test_the_audit_log_shows_a_change_once_with_the_person_first_and_a_link_to_it(page: Page, transactional_db):
    facts = Facts.for_cluster()
    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    where = {"cluster_name": "local", "namespace": "demo", "object_kind": "ConfigMap", "object_name": "env-config"}
    audit.record(
        "driftwatch", AuditEvent.Action.CONFIG_CHANGED, "ConfigMap demo/env-config changed by kubectl-patch",
        detail={"resource_version": "101", "client": "kubectl-patch"}, **where,
    )  # fmt: skip
    audit.record(
        "alice@example.com", AuditEvent.Action.CONFIG_AUTHOR,
        "ConfigMap demo/env-config changed by alice@example.com via kubectl-patch",
        detail={"resource_version": "101"}, **where,
    )  # fmt: skip
    user("vera", "viewer", password=PASSWORD)
    log_in(page, "vera")
    page.goto(reverse("audit") + "?action=config.")
    rows = page.locator("#audit-results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").nth(1)).to_have_text(re.compile(r"^alice@example\.com\s+seen by driftwatch$"))
    expect(rows.first).to_contain_text("configuration changed")
    screenshot(page, "50-audit-one-row-per-change")
    rows.first.get_by_role("link", name="ConfigMap env-config").click()
    expect(page.get_by_role("heading", name="ConfigMap env-config")).to_be_visible()


def test_delete_asks_first_and_a_test_reaches_the_channel(page: Page, transactional_db):
    user("olga", "operator", namespaces=["*/*"], password=PASSWORD)
    log_in(page, "olga")
    with receiver() as hook:
        channel = Channel.objects.create(name="team", kind=Channel.Kind.JSON, url=hook.url + "/hook", signing_key="k")
        NotificationRule.objects.create(name="demo-stale", channel=channel, namespace="demo")
        page.goto(reverse("notifications"))
        page.get_by_role("button", name="Send a test to team").click()
        expect(page.get_by_text("A test notice went to team")).to_be_visible()
        [received] = hook.wait_for(1)
        assert json.loads(received.body)["test"] is True
    screenshot(page, "51-notifications-test-sent")

    page.get_by_role("link", name="Delete team…").click()
    expect(page.get_by_role("heading", name="Delete channel team?")).to_be_visible()
    expect(page.get_by_text("its rule demo-stale is deleted with it")).to_be_visible()
    screenshot(page, "52-notifications-delete-asks")
    page.get_by_role("link", name="Cancel").click()
    assert Channel.objects.filter(pk=channel.pk).exists(), "Cancel deletes nothing"

    page.get_by_role("link", name="Delete team…").click()
    page.get_by_role("button", name="Delete channel team").click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    assert not Channel.objects.filter(pk=channel.pk).exists()
