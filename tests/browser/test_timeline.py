"""The timeline in a real browser: from a workload's page to its tab and to the namespace's timeline, filtered
by kind of entry, and an entry clicked to open point in time at that moment."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from drift.models import ContainerInstance, Pod, Rollout, SourceVersion, VerdictChange
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, Facts, user

pytestmark = [pytest.mark.browser]


@pytest.fixture
def incident(transactional_db):
    """alice's edit of env-config 20 minutes ago, old-a going stale, bob's rollout, new-b crashing."""
    facts = Facts.for_cluster()
    for minutes in range(70, 0, -1):
        facts.run(minutes_ago=minutes - 0.5)
    facts.source("env-config", (60, {"log_level": "INFO"}), (20, {"log_level": "DEBUG"}))
    SourceVersion.objects.filter(first_seen=facts.at(20)).update(changed_by="alice", client="kubectl-edit")
    facts.old = facts.pod("env-demo", "old-a", [{"source_name": "env-config"}], started_minutes_ago=50)
    facts.new = facts.pod("env-demo", "new-b", [{"source_name": "env-config"}], started_minutes_ago=15)
    Pod.objects.filter(pk=facts.old.pk).update(deleted_at=facts.at(14))
    ContainerInstance.objects.filter(pod=facts.new).update(
        termination_reason="OOMKilled", exit_code=137, finished_at=facts.at(5), restart_count=1
    )
    Rollout.objects.create(
        cluster=facts.cluster, kind="Deployment", namespace="demo", name="env-demo", requested_by="bob",
        requested_at=facts.at(16), status=Rollout.Status.COMPLETE, annotation_key="driftwatch.io/config-hash",
    )  # fmt: skip
    VerdictChange.objects.create(
        cluster=facts.cluster, namespace="demo", workload=facts.old.workload, pod=facts.old,
        consumption=facts.old.containers.get().consumptions.get(), old_verdict="fresh", new_verdict="stale",
        at=facts.at(19),
    )  # fmt: skip
    return facts


def test_the_timeline_journey_open_filter_and_click_an_entry(page: Page, incident):
    user("lead", "viewer", password=PASSWORD)
    log_in(page, "lead")
    page.goto("/clusters/local/demo/workloads/Deployment/env-demo/")
    page.get_by_role("link", name="Timeline", exact=True).click()
    expect(page).to_have_url(re.compile(r"/workloads/Deployment/env-demo/timeline/$"))
    expect(page.get_by_role("heading", name="Timeline of Deployment/env-demo")).to_be_visible()
    entries = page.locator("#timeline-entries tr.entry")
    expect(entries.filter(has_text="#2 changed by alice via kubectl-edit")).to_have_count(1)
    expect(entries.filter(has_text="fresh → stale")).to_have_count(1)
    expect(entries.filter(has_text="OOMKilled (exit code 137)")).to_have_count(1)
    expect(page.locator("#timeline-chart svg")).to_be_visible()  # old-a was stale for a while
    screenshot(page, "40-timeline-workload")

    page.goto("/clusters/local/demo/timeline/")
    page.get_by_label("Driftwatch rollouts").check()
    page.get_by_label("container terminations").check()
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"kind=rollout&kind=termination"))
    expect(entries).to_have_count(2)
    expect(entries.first).to_contain_text("asked by bob")
    screenshot(page, "41-timeline-filtered")

    rollout_at = timezone.localtime(incident.at(16))
    entries.first.get_by_role("link", name=re.compile(r"\d{4}-\d\d-\d\d")).click()
    expect(page).to_have_url(re.compile(r"/workloads/Deployment/env-demo/\?at="))
    expect(page.locator("#as-of")).to_contain_text(f"{rollout_at:%Y-%m-%d %H:%M}")
    # At the rollout's moment old-a still ran, stale: the edit was 4 minutes before.
    expect(page.locator(f'tr[data-pod-uid="{incident.old.uid}"]')).to_contain_text("stale")
    screenshot(page, "42-timeline-then")
