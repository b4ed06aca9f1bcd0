"""During an incident, in a real browser: point in time from the overview's picker and its shortcuts, its links
keeping the moment, a bad moment said plainly; and restoring a ConfigMap version on the real cluster, refused
when it changed after the preview, done (and audited) otherwise."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from drift.history import history
from drift.models import AuditEvent, Cluster
from drift.snapshot import snapshot
from drift.vocabulary import SourceKind
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, Facts, user

pytestmark = [pytest.mark.browser]


@pytest.fixture
def incident(transactional_db):
    """env-config #1 an hour ago, #2 (DEBUG) 20 minutes ago; old-a started before the edit, new-b after."""
    facts = Facts.for_cluster()
    for minutes in range(70, 0, -1):
        facts.run(minutes_ago=minutes - 0.5)
    facts.source("env-config", (60, {"log_level": "INFO"}), (20, {"log_level": "DEBUG"}))
    facts.old = facts.pod("env-demo", "old-a", [{"source_name": "env-config"}], started_minutes_ago=50)
    facts.new = facts.pod("env-demo", "new-b", [{"source_name": "env-config"}], started_minutes_ago=15)
    return facts


def test_point_in_time_from_the_picker_its_shortcuts_and_links(page: Page, incident):
    user("lead", "viewer", password=PASSWORD)
    log_in(page, "lead")
    moment = timezone.localtime(incident.at(10)).strftime("%Y-%m-%dT%H:%M:%S")
    page.get_by_label("What ran at").fill(moment)
    page.get_by_role("button", name="Show").last.click()

    expect(page.locator("#as-of")).to_contain_text("As of")
    expect(page).to_have_url(re.compile(r"[?&]at="))
    old_row = page.locator(f'tr[data-pod-uid="{incident.old.uid}"]')
    expect(old_row).to_contain_text("#1")
    expect(old_row).to_contain_text("#2")
    expect(old_row).to_contain_text("stale")
    expect(page.locator(f'tr[data-pod-uid="{incident.new.uid}"]')).to_contain_text("fresh")
    screenshot(page, "30-point-in-time")

    page.get_by_role("link", name="15 minutes before").click()  # 25 minutes ago: before the edit, before new-b
    expect(page.locator(f'tr[data-pod-uid="{incident.old.uid}"]')).to_contain_text("fresh")
    expect(page.locator(f'tr[data-pod-uid="{incident.new.uid}"]')).to_have_count(0)

    page.get_by_role("link", name="Deployment/env-demo").first.click()
    expect(page).to_have_url(re.compile(r"/workloads/Deployment/env-demo/\?at="))
    expect(page.locator("#as-of")).to_be_visible()
    expect(page.get_by_role("heading", name="Deployment/env-demo")).to_be_visible()

    page.goto("/?at=9999-12-31T23:59")
    expect(page.locator("#at-error")).to_contain_text("in the future")
    page.goto("/?at=" + "x" * 100)
    expect(page.locator("#at-error")).to_contain_text("at most 40 characters")


@pytest.mark.cluster
def test_restore_a_config_map_version_refused_then_done(page: Page, kube, kubeconfig, namespace, transactional_db):
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])
    kube.config_map("app-config", {"level": "INFO"})
    snapshot(cluster)
    kube.edit_config_map("app-config", {"level": "DEBUG"})
    snapshot(cluster)
    assert len(history(cluster, namespace, SourceKind.CONFIG_MAP, "app-config")) == 2
    user("oncall", "operator", [f"local/{namespace}"], password=PASSWORD)
    log_in(page, "oncall")
    page.goto(reverse("source", args=["local", namespace, "configmaps", "app-config"]))

    page.get_by_role("link", name="Restore version #1").click()
    expect(page.locator("#dry-run")).to_contain_text("accepted")
    expect(page.locator(".key-diff")).to_contain_text("level")
    screenshot(page, "31-restore-preview")
    kube.edit_config_map("app-config", {"level": "WARN"})  # someone else, after the preview
    page.get_by_role("button", name="Restore version #1").click()
    expect(page.locator("#restore-refused")).to_contain_text("changed after the preview")
    assert kube.core.read_namespaced_config_map("app-config", namespace).data == {"level": "WARN"}

    page.get_by_role("link", name="Preview again").click()
    page.get_by_role("button", name="Restore version #1").click()
    expect(page.get_by_text(re.compile(r"ConfigMap app-config restored to version #1"))).to_be_visible()
    assert kube.core.read_namespaced_config_map("app-config", namespace).data == {"level": "INFO"}
    assert AuditEvent.objects.filter(actor="oncall", action=AuditEvent.Action.RESTORED).count() == 1
    assert timezone.now() - cluster.created_at < timedelta(minutes=10)
