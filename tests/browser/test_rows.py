"""What a team lead does from the rows, in a real browser against the live server, the real cluster, a real
Celery worker and beat: Roll out one workload from its overview row, roll out a ConfigMap's stale consumers
from its page, see a batch's end untick and refresh the rows it rolled out, and read the Rollouts page."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from drift.clusters import register_cluster
from drift.models import AuditEvent, Cluster, Rollout, SnapshotRun
from drift.snapshot import snapshot
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, user
from tests.kube_helpers import deployment

pytestmark = [pytest.mark.browser]

# A rollout's new pods get judged by the snapshot its completion asks the worker for; under load that takes a while.
SETTLED = 120_000


def snapshot_ok(cluster: Cluster) -> None:
    run = snapshot(cluster)
    assert run.status in (SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL), run.error


@pytest.fixture
def stale_env_demo(kube, kubeconfig, transactional_db) -> Cluster:
    """env-demo (2 replicas) reads env-config through envFrom; env-config changed since they started."""
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "nginx", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container], replicas=2))
    kube.wait_deployment_ready("env-demo", timeout=240)
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin")
    snapshot_ok(cluster)
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    snapshot_ok(cluster)
    return cluster


def overview_row(page: Page, name: str):
    return page.locator("#overview-body").get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))


@pytest.mark.cluster
def test_a_rows_roll_out_asks_for_confirmation_rolls_out_and_the_row_turns_fresh(
    page: Page, kube, stale_env_demo, celery_worker_process, celery_beat_process
):
    user("olga", "operator", password=PASSWORD)
    log_in(page, "olga")
    page.goto(f"/?namespace={kube.namespace}")
    expect(page.locator("#restart-line")).to_have_text("1 workload needs a restart in 1 of 1 cluster.")
    expect(page.locator(".cluster-head .as-of")).to_have_text(re.compile(r"as of \d+ s ago"))
    row = overview_row(page, "env-demo")
    expect(row).to_contain_text("env read at start — restart needed")
    screenshot(page, "rows-01-overview-why")

    row.get_by_role("button", name="Roll out Deployment/env-demo").click()
    panel = page.locator("#rollout-panel")
    expect(panel).to_contain_text(f"Roll out Deployment/env-demo in {kube.namespace} of cluster local?")
    expect(panel).to_contain_text("server-side dry run accepted the patch")
    expect(panel).not_to_contain_text("already runs the current configuration")
    panel.get_by_label(re.compile("Reason")).fill("pick up the new log level")
    screenshot(page, "rows-02-row-confirm")
    panel.get_by_role("button", name="Confirm rollout").click()
    expect(panel.locator(".status")).to_have_text("Complete", timeout=90_000)
    expect(panel.get_by_role("link", name="Back to Deployment/env-demo")).to_be_visible()

    # The list refreshes itself: the row leaves "needs attention" once the new pods are judged, never "split".
    expect(overview_row(page, "env-demo")).to_have_count(0, timeout=SETTLED)
    expect(page.locator("#overview-body")).not_to_contain_text("split")
    expect(page.locator("#restart-line")).to_have_text("No workload needs a restart in 1 cluster.")
    screenshot(page, "rows-03-overview-after")
    requested = AuditEvent.objects.get(action=AuditEvent.Action.ROLLOUT_REQUESTED, object_name="env-demo")
    assert requested.actor == "olga" and requested.detail["reason"] == "pick up the new log level"


@pytest.mark.cluster
def test_a_configmaps_page_rolls_out_its_stale_consumers(
    page: Page, kube, stale_env_demo, celery_worker_process, celery_beat_process
):
    user("olga", "operator", password=PASSWORD)
    log_in(page, "olga")
    page.goto(reverse("source", args=["local", kube.namespace, "configmaps", "env-config"]))
    expect(page.get_by_role("heading", name="ConfigMap env-config")).to_be_visible()
    page.get_by_role("button", name="Roll out the stale consumers").click()
    panel = page.locator("#rollout-panel")
    expect(panel).to_contain_text("Roll out 1 workload?")
    expect(panel).to_contain_text("Deployment/env-demo")
    screenshot(page, "rows-04-source-stale-consumers")
    panel.get_by_role("button", name="Confirm rollout of 1 workload").click()
    expect(panel).to_contain_text("Bulk rollout: finished", timeout=90_000)
    expect(panel.locator(".status")).to_have_text("Complete")
    # The page refreshes on a reload once the new pods are judged: no stale consumer is left to roll out.
    for _ in range(60):
        page.reload()
        if page.get_by_role("button", name="Roll out the stale consumers").count() == 0:
            break
        page.wait_for_timeout(2000)
    expect(page.get_by_role("button", name="Roll out the stale consumers")).to_have_count(0)


@pytest.mark.cluster
def test_a_batchs_end_unticks_its_rows_and_refreshes_them(
    page: Page, kube, stale_env_demo, celery_worker_process, celery_beat_process
):
    user("olga", "operator", password=PASSWORD)
    log_in(page, "olga")
    page.goto(f"/?namespace={kube.namespace}")
    row = overview_row(page, "env-demo")
    row.get_by_role("checkbox", name="Select Deployment/env-demo").check()
    page.get_by_role("button", name="Roll out selected").click()
    panel = page.locator("#rollout-panel")
    panel.get_by_role("button", name="Confirm rollout of 1 workload").click()
    expect(panel).to_contain_text("Bulk rollout: finished", timeout=90_000)
    # Nothing is left ticked, so the list refreshes again: the row goes once the new pods are judged.
    expect(page.locator('input[form="bulk-form"]:checked')).to_have_count(0)
    expect(overview_row(page, "env-demo")).to_have_count(0, timeout=SETTLED)
    screenshot(page, "rows-05-batch-finished")


def test_the_rollouts_page_lists_running_and_recent_rollouts_and_filters_them(page: Page, transactional_db):
    local = Cluster.objects.create(name="local", kubeconfig_path="/nonexistent")
    staging = Cluster.objects.create(name="staging", kubeconfig_path="/nonexistent")
    for cluster, name, status in (
        (local, "env-demo", Rollout.Status.IN_PROGRESS),
        (local, "nginx", Rollout.Status.COMPLETE),
        (staging, "api", Rollout.Status.FAILED),
    ):
        Rollout.objects.create(
            cluster=cluster, kind="Deployment", namespace="demo", name=name, requested_by="olga",
            annotation_key="driftwatch.io/config-hash", status=status, reason=f"why {name}",
        )  # fmt: skip
    user("vera", "viewer", password=PASSWORD)
    log_in(page, "vera")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rollouts").click()
    expect(page.get_by_role("heading", name="Rollouts", exact=True)).to_be_visible()
    listed = page.locator("#rollout-list tbody tr")
    expect(listed).to_have_count(3)
    screenshot(page, "rows-06-rollouts")
    page.get_by_label("Cluster").select_option("staging")
    page.get_by_role("button", name="Filter").click()
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("Deployment/api")
    expect(listed).to_contain_text("why api")
    page.get_by_label("Cluster").select_option("")
    page.get_by_label("State").select_option("running")
    page.get_by_role("button", name="Filter").click()
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("Deployment/env-demo")
    listed.get_by_role("link", name=re.compile(r"^\d{4}-")).click()
    expect(
        page.get_by_role("heading", name=re.compile(r"Rollout of Deployment.env-demo in demo of cluster local"))
    ).to_be_visible()
    expect(page.get_by_role("link", name="Back to Deployment/env-demo")).to_be_visible()


def test_a_rollouts_end_unticks_the_rows_and_refreshes_the_list_at_once(page: Page, transactional_db):
    """The list stops refreshing while a box is ticked; the end of a rollout (the event a finished batch's or
    rollout's last answer sends) must untick them and refresh the list, or it goes on showing the moment before."""
    from django.utils import timezone

    from drift import verdicts
    from drift.models import Pod
    from tests.facts import Facts

    facts = Facts.for_cluster()
    facts.source("env-config", (90, {"log_level": "INFO"}), (10, {"log_level": "DEBUG"}))
    stale = facts.pod("env-demo", "env-demo-old", [{"source_name": "env-config"}], started_minutes_ago=30)
    facts.run()
    verdicts.facts_changed(facts.cluster)
    user("olga", "operator", password=PASSWORD)
    log_in(page, "olga")
    row = overview_row(page, "env-demo")
    row.get_by_role("checkbox", name="Select Deployment/env-demo").check()

    # The rollout replaced the pod: the old one is being deleted, a new one runs the current config.
    Pod.objects.filter(pk=stale.pk).update(terminating_since=timezone.now())
    facts.pod("env-demo", "env-demo-new", [{"source_name": "env-config"}], started_minutes_ago=1)
    verdicts.facts_changed(facts.cluster)
    page.evaluate("document.body.dispatchEvent(new CustomEvent('rollout-finished', {bubbles: true}))")

    expect(page.locator('input[form="bulk-form"]:checked')).to_have_count(0)
    expect(overview_row(page, "env-demo")).to_have_count(0, timeout=5_000)  # not after the next 10 s poll
    expect(page.locator("#restart-line")).to_have_text("No workload needs a restart in 1 cluster.")
