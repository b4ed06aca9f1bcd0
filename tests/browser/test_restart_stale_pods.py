"""Restart the stale pods only, in a real browser: the confirmation shows which pods go, which fresh ones stay,
and per pod the keys that change (values for a ConfigMap) with who changed them; then the pods go one at a time
while the fresh one stays, as the beat task and the worker advance it."""

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from drift.clusters import register_cluster
from drift.models import Rollout
from tests.browser.conftest import log_in, screenshot
from tests.browser.test_journeys import snapshot_ok
from tests.facts import PASSWORD, user
from tests.kube_helpers import deployment, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.cluster]


@pytest.fixture
def split_env_demo(kube, kubeconfig, transactional_db):
    """env-demo on three pods; env-config changes and one pod is replaced by hand: two stale, one fresh."""
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "nginx", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container], replicas=3))
    kube.wait_deployment_ready("env-demo")
    # Only this namespace: the shared cluster may hold thousands of other pods.
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin", namespaces=[kube.namespace])
    snapshot_ok(cluster)
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    replaced = sorted(kube.pods("env-demo"), key=lambda pod: pod.metadata.name)[0]
    kube.core.delete_namespaced_pod(replaced.metadata.name, kube.namespace)
    wait_until(lambda: replaced.metadata.uid not in {p.metadata.uid for p in kube.pods("env-demo")}, what="pod gone")
    kube.wait_deployment_ready("env-demo")
    snapshot_ok(cluster)
    fresh = [p for p in kube.pods("env-demo") if p.metadata.creation_timestamp > replaced.metadata.creation_timestamp]
    stale = [p for p in kube.pods("env-demo") if p not in fresh]
    return cluster, fresh, stale


def test_an_operator_restarts_only_the_stale_pods_after_seeing_what_changes_for_each(
    page: Page, kube, split_env_demo, celery_worker_process, celery_beat_process
):
    _, [fresh], stale = split_env_demo
    user("olga", "operator", password=PASSWORD)
    log_in(page, "olga")
    page.goto(reverse("workload", args=["local", kube.namespace, "Deployment", "env-demo"]))
    expect(page.get_by_role("heading", name="Deployment/env-demo")).to_be_visible()

    page.get_by_role("button", name="Restart the stale pods only").click()
    panel = page.locator("#rollout-panel")
    expect(panel.get_by_role("heading", name="Restart the stale pods of Deployment/env-demo")).to_be_visible()
    going = panel.locator("ul.evicted-pods > li")
    expect(going).to_have_count(2)
    for pod in stale:
        item = going.filter(has_text=pod.metadata.name)
        expect(item.locator("table.keys tr").filter(has_text="log_level")).to_contain_text("INFO")
        expect(item.locator("table.keys tr").filter(has_text="log_level")).to_contain_text("DEBUG")
        expect(item.locator(".authors")).to_contain_text("version #2 by")
    expect(panel.locator("ul.staying-pods")).to_have_text(fresh.metadata.name)
    expect(panel).to_contain_text("server-side dry run accepted the eviction")
    screenshot(page, "20-restart-stale-confirm")

    panel.get_by_role("button", name="Confirm: evict 2 stale pods").click()
    expect(panel.locator(".status")).to_have_text("Complete", timeout=120_000)
    expect(panel.get_by_role("progressbar", name="Evicted")).to_have_attribute("value", "2")
    expect(panel.get_by_role("progressbar", name="Replaced")).to_have_attribute("value", "2")
    screenshot(page, "21-restart-stale-complete")

    live = {pod.metadata.uid for pod in kube.pods("env-demo")}
    assert fresh.metadata.uid in live
    assert live.isdisjoint(pod.metadata.uid for pod in stale)
    assert Rollout.objects.get(name="env-demo", action="evict").requested_by == "olga"
