"""What the process runs, in a browser: after an edit of the demo's nginx.conf, real nginx on the real node keeps
what it read at start; the workload page says the file is new on disk only, why, and what to do, and an operator
says on that page that the app needs a restart, which the verdict then follows."""

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from drift.clusters import register_cluster
from drift.models import AuditEvent, SnapshotRun
from drift.snapshot import snapshot
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, user
from tests.test_real_node import find_real_node
from tests.test_real_node_process import demo_nginx, edit_and_wait_for_file, nginx_answers, ready_pod

pytestmark = [pytest.mark.browser, pytest.mark.cluster]


@pytest.fixture
def nginx_edited(kube, kube_api, kubeconfig, transactional_db):
    """The demo's nginx on the real node, seen by Driftwatch before and after an edit of its nginx.conf."""
    find_real_node(kube_api)
    data, manifest = demo_nginx()
    kube.config_map("nginx-config", data)
    kube.create_deployment(manifest)
    kube.wait_deployment_ready("nginx")
    pod = ready_pod(kube, "nginx")
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin")
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    edit_and_wait_for_file(kube, pod, data["nginx.conf"], "v2")
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    assert nginx_answers(kube, pod) == "v1", "nginx still runs what it read at start"
    return kube


def test_the_workload_page_says_new_on_disk_only_and_an_operator_declares_a_restart(page: Page, nginx_edited):
    namespace = nginx_edited.namespace
    user("lead", "operator", [f"local/{namespace}"], password=PASSWORD)
    log_in(page, "lead")
    page.goto(reverse("workload", args=["local", namespace, "Deployment", "nginx"]))
    pods = page.locator("#workload-pods")
    expect(pods.get_by_text("1 new on disk only", exact=True)).to_be_visible()
    row = pods.locator("tbody.pod tr", has_text="nginx-config")
    expect(row).to_contain_text("new on disk only")
    expect(row).to_contain_text("not known to reload")
    expect(row).to_contain_text("restart to be sure")
    expect(row).not_to_contain_text("fresh")
    screenshot(page, "40-workload-new-on-disk-only")

    settings = page.locator("#reload-setting")
    settings.get_by_label("The app").select_option("restart")
    settings.get_by_role("button", name="Save").click()
    expect(page.get_by_text("lead declared every container of Deployment/nginx restart.")).to_be_visible()
    expect(settings).to_contain_text("Every container: restart, set by lead")
    row = page.locator("#workload-pods tbody.pod tr", has_text="nginx-config")
    expect(row).to_contain_text("stale")
    expect(row).to_contain_text("declared restart by lead on the workload page")
    screenshot(page, "41-workload-declared-restart")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.RELOAD_SET, actor="lead", object_name="nginx").exists()
