"""Run now and Roll out's change preview, in a real browser. Run now: a CronJob's page says when its next Job reads
the current config; Run now shows its confirmation (what it reads, a dry run), Confirm creates a Job whose pod, on
the real node, prints the ConfigMap's new value. Roll out: the confirmation lists, per stale pod, the keys that
change with who changed them, and the fresh pod a rollout restarts anyway."""

import pytest
from django.urls import reverse
from kubernetes import client as k8s
from playwright.sync_api import Page, expect

from drift.clusters import register_cluster
from drift.models import Workload
from tests.browser.conftest import log_in, screenshot
from tests.browser.test_journeys import snapshot_ok
from tests.browser.test_restart_stale_pods import split_env_demo  # noqa: F401 (a fixture)
from tests.facts import PASSWORD, user
from tests.kube_helpers import parse_env
from tests.test_real_node import find_real_node
from tests.test_run_now import cron_job, job_output

pytestmark = [pytest.mark.browser, pytest.mark.cluster]


def test_an_operator_runs_a_cron_job_now_and_its_job_reads_the_new_config(
    page: Page, kube, kube_api, kubeconfig, transactional_db
):
    find_real_node(kube_api)
    kube.config_map("job-config", {"LOG_LEVEL": "INFO"})
    k8s.BatchV1Api(kube_api).create_namespaced_cron_job(kube.namespace, cron_job())
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin", namespaces=[kube.namespace])
    # The row its Jobs' pods are filed under; the snapshot records its schedule.
    Workload.objects.create(cluster=cluster, kind="CronJob", namespace=kube.namespace, name="nightly")
    snapshot_ok(cluster)
    kube.edit_config_map("job-config", {"LOG_LEVEL": "DEBUG"})
    user("olga", "operator", password=PASSWORD)
    log_in(page, "olga")

    page.goto(reverse("workload", args=["local", kube.namespace, "CronJob", "nightly"]))
    expect(page.locator("#next-run")).to_contain_text("its next Job will read the current config at 00:00")
    page.get_by_role("button", name="Run now").click()
    panel = page.locator("#rollout-panel")
    expect(panel.get_by_role("heading", name="Run CronJob/nightly")).to_be_visible()
    expect(panel).to_contain_text("ConfigMap job-config")
    screenshot(page, "22-run-now-confirm")
    assert k8s.BatchV1Api(kube_api).list_namespaced_job(kube.namespace).items == []

    panel.get_by_role("button", name="Confirm: run now").click()
    expect(panel.get_by_role("heading", name="Job created")).to_be_visible()
    job = panel.locator("#run-now-job").get_attribute("data-job")
    assert job and job.startswith("nightly-manual-")
    screenshot(page, "23-run-now-created")
    assert parse_env(job_output(kube_api, kube.namespace, job)) == {"LOG_LEVEL": "DEBUG"}


def test_roll_out_shows_what_changes_for_each_pod_and_the_fresh_pod_it_restarts_anyway(
    page: Page,
    kube,
    split_env_demo,  # noqa: F811
):
    _, [fresh], stale = split_env_demo
    user("olga", "operator", password=PASSWORD)
    log_in(page, "olga")
    page.goto(reverse("workload", args=["local", kube.namespace, "Deployment", "env-demo"]))

    page.get_by_role("button", name="Roll out Deployment/env-demo").click()
    panel = page.locator("#rollout-panel")
    expect(panel.get_by_role("heading", name="Roll out Deployment/env-demo")).to_be_visible()
    changed = panel.locator("ul.changed-pods > li")
    expect(changed).to_have_count(2)
    for pod in stale:
        row = changed.filter(has_text=pod.metadata.name).locator("table.keys tr").filter(has_text="log_level")
        expect(row).to_contain_text("INFO")
        expect(row).to_contain_text("DEBUG")
        expect(changed.filter(has_text=pod.metadata.name).locator(".authors")).to_contain_text("version #2 by")
    expect(panel.locator("ul.restarted-anyway > li")).to_have_text(f"{fresh.metadata.name} fresh")
    screenshot(page, "24-roll-out-preview")
