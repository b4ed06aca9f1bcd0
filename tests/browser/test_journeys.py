"""Journeys through the dashboard in a real browser, against the live server, the real cluster and a real
Celery worker: what a team lead does, and what a viewer cannot do."""

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from django.urls import reverse
from playwright.sync_api import Page, expect

from drift.clusters import register_cluster
from drift.models import AuditEvent, Cluster, Rollout, SnapshotRun, Workload
from drift.snapshot import snapshot
from tests.browser.conftest import log_in, screenshot
from tests.facts import PASSWORD, user
from tests.kube_helpers import deployment, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.cluster]

SEED = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "30-nginx-config.yaml"
SCRIPT = '<script>alert("from the cluster")</script>'


def snapshot_ok(cluster: Cluster) -> None:
    """Play beat's part: one snapshot cycle, which must succeed."""
    run = snapshot(cluster)
    assert run.status in (SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL), run.error


@pytest.fixture
def stale_env_demo(kube, kubeconfig, transactional_db) -> Cluster:
    """The seed's env test in a fresh namespace: env-demo reads env-config through envFrom, then env-config
    changes; Driftwatch has seen both versions."""
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "nginx", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container], replicas=2))
    kube.wait_deployment_ready("env-demo")
    for pod in kube.ready_pods("env-demo"):
        kube.wait_exec_ready(pod.metadata.name)
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin")
    snapshot_ok(cluster)
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    snapshot_ok(cluster)
    return cluster


def workload_url(namespace: str, name: str = "env-demo") -> str:
    return reverse("workload", args=["local", namespace, "Deployment", name])


def test_the_overview_says_what_to_do_before_any_cluster(page: Page, transactional_db):
    user("admin", "operator", password=PASSWORD)
    log_in(page, "admin")
    expect(page.get_by_role("heading", name="No cluster yet")).to_be_visible()
    expect(page.get_by_text("python manage.py cluster add NAME --kubeconfig PATH")).to_be_visible()
    screenshot(page, "00-overview-no-cluster")


def test_an_operator_rolls_out_env_demo_and_sees_the_new_pods_fresh(
    page: Page, kube, stale_env_demo, celery_worker_process, celery_beat_process
):
    user("olga", "operator", password=PASSWORD)
    old_pods = sorted(pod.metadata.name for pod in kube.pods("env-demo"))
    log_in(page, "olga")

    # Overview: filter on the namespace; env-demo shows both pods stale because of env-config.
    page.get_by_label("Namespace").select_option(kube.namespace)
    expect(page).to_have_url(re.compile(f"namespace={kube.namespace}"))
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="env-demo", exact=True))
    expect(row.locator(".verdict.stale")).to_have_text("2")
    expect(row).to_contain_text("ConfigMap env-config")
    screenshot(page, "01-overview-env-demo-stale")

    row.get_by_role("link", name="env-demo", exact=True).click()
    expect(page.get_by_role("heading", name="Deployment/env-demo")).to_be_visible()
    pods = page.locator("#workload-pods")
    expect(pods.locator("tbody.pod")).to_have_count(2)
    expect(pods.locator("tbody.pod .verdict.stale").first).to_be_visible()
    screenshot(page, "02-workload-stale")

    # Roll out: the confirmation shows which pods go, the strategy and the server-side dry run.
    page.get_by_role("button", name=re.compile(r"^Roll out")).click()
    panel = page.locator("#rollout-panel")
    expect(panel).to_contain_text("server-side dry run accepted the patch")
    expect(panel).to_contain_text("RollingUpdate")
    for pod in old_pods:
        expect(panel).to_contain_text(pod)
    screenshot(page, "03-rollout-confirm")

    page.get_by_role("button", name="Confirm rollout").click()
    expect(panel.locator(".status")).to_have_text("Complete", timeout=90_000)
    for bar in ("Updated", "Ready", "Available"):
        expect(panel.get_by_role("progressbar", name=bar)).to_have_attribute("value", "2")
        expect(panel.get_by_role("progressbar", name=bar)).to_have_attribute("max", "2")
    screenshot(page, "04-rollout-complete")

    # The completed rollout asked the worker for a snapshot; the pods table refreshes itself.
    new_pods = wait_until(
        lambda: (names := sorted(p.metadata.name for p in kube.ready_pods("env-demo"))) and set(names).isdisjoint(old_pods) and len(names) == 2 and names,
        what="two new pods",
    )  # fmt: skip
    for pod in new_pods:
        expect(pods).to_contain_text(pod, timeout=90_000)
    for pod in old_pods:
        expect(pods).not_to_contain_text(pod)
    expect(pods.locator("tbody.pod")).to_have_count(2)
    expect(pods.locator("table.drift .verdict.stale")).to_have_count(0)
    expect(pods.locator("tbody.pod .verdict.fresh")).to_have_count(4)  # per pod: its badge and its env-config row
    expect(page.locator("#rollout-history")).to_contain_text("olga")
    expect(page.locator("#rollout-history")).to_contain_text("Complete")
    screenshot(page, "05-workload-fresh")

    # The new pod's environment against the current ConfigMap.
    pods.get_by_role("link", name=new_pods[0]).click()
    expect(page.get_by_role("heading", name=f"Pod {new_pods[0]}")).to_be_visible()
    env = page.get_by_role("row").filter(has_text="log_level")
    expect(env).to_contain_text("DEBUG")
    expect(env).to_contain_text("same")
    screenshot(page, "06-pod")

    page.get_by_role("link", name="ConfigMap env-config").first.click()
    expect(page.get_by_role("heading", name="ConfigMap env-config")).to_be_visible()
    expect(page.locator("#version-diff tr.changed")).to_contain_text("INFO")
    expect(page.locator("#version-diff tr.changed")).to_contain_text("DEBUG")
    screenshot(page, "07-configmap-env-config")

    # The audit log has the rollout under her name.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    page.get_by_label("Actor").fill("olga")
    page.get_by_role("button", name="Filter").click()
    results = page.locator("#audit-results")
    requested = results.get_by_role("row").filter(has_text="rollout requested")
    expect(requested).to_contain_text("olga")
    expect(requested).to_contain_text("Deployment env-demo")
    expect(results.get_by_role("row").filter(has_text="rollout completed")).to_contain_text("olga")
    screenshot(page, "08-audit-log")


def test_a_viewer_sees_no_rollout_button_and_a_forged_post_gets_403(page: Page, kube, stale_env_demo):
    user("vera", "viewer", password=PASSWORD)
    log_in(page, "vera")
    page.goto(workload_url(kube.namespace))
    expect(page.get_by_role("heading", name="Deployment/env-demo")).to_be_visible()
    expect(page.locator("#workload-pods .verdict.stale").first).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Roll out"))).to_have_count(0)
    expect(page.get_by_text("Your role may not roll out")).to_be_visible()
    screenshot(page, "10-viewer-workload")

    workload = Workload.objects.get(cluster=stale_env_demo, namespace=kube.namespace, name="env-demo")
    form = {"workload": str(workload.pk)}
    status = page.evaluate(
        """async (body) => {
            const token = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
            const response = await fetch("/rollouts/", {method: "POST", body,
                headers: {"X-CSRFToken": token, "Content-Type": "application/x-www-form-urlencoded"}});
            return response.status;
        }""",
        urlencode(form),
    )
    assert status == 403

    # The same forgery as a plain form post lands on the 403 page.
    with page.expect_navigation() as navigation:
        page.evaluate(
            """(fields) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = "/rollouts/plan/";
                fields.csrfmiddlewaretoken = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
                for (const [name, value] of Object.entries(fields)) {
                    const input = document.createElement("input");
                    input.type = "hidden"; input.name = name; input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            form,
        )
    assert navigation.value.status == 403
    expect(page.get_by_role("heading", name="Not allowed (403)")).to_be_visible()
    screenshot(page, "11-viewer-forged-post-403")

    assert AuditEvent.objects.filter(action="access.denied", actor="vera").count() == 2
    assert not Rollout.objects.exists()
    template = kube.apps.read_namespaced_deployment("env-demo", kube.namespace).spec.template
    assert not template.metadata.annotations

    page.goto(reverse("audit") + "?actor=vera")
    expect(page.locator("#audit-results").get_by_role("row").filter(has_text="access denied")).to_have_count(2)
    screenshot(page, "12-viewer-audit")


def test_config_pages_show_the_seeds_nginx_conf_as_text_and_secrets_as_keys(
    page: Page, kube, kubeconfig, transactional_db
):
    seed = next(doc for doc in yaml.safe_load_all(SEED.read_text()) if doc["kind"] == "ConfigMap")
    conf = seed["data"]["nginx.conf"]
    kube.config_map("nginx-config", {"nginx.conf": conf, "banner": SCRIPT})
    kube.secret("db", {"password": "canary-value-one"})
    container = {
        "name": "nginx",
        "image": "nginx:1.27",
        "envFrom": [{"secretRef": {"name": "db"}}],
        "volumeMounts": [{"name": "conf", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf"}],
    }
    kube.create_deployment(
        deployment("nginx", [container], volumes=[{"name": "conf", "configMap": {"name": "nginx-config"}}])
    )
    kube.wait_deployment_ready("nginx")
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin")
    snapshot_ok(cluster)
    kube.edit_config_map(
        "nginx-config", {"nginx.conf": conf.replace("worker_connections 1024", "worker_connections 2048")}
    )
    kube.edit_secret("db", {"password": "canary-value-two", "user": "app"})
    snapshot_ok(cluster)
    user("vera", "viewer", password=PASSWORD)
    log_in(page, "vera")

    page.goto(reverse("source", args=["local", kube.namespace, "configmaps", "nginx-config"]))
    diff = page.locator("#version-diff")
    expect(diff.locator("tr.changed")).to_contain_text("events { worker_connections 1024; }")
    expect(diff.locator("tr.changed")).to_contain_text("events { worker_connections 2048; }")
    page.get_by_label("every line").check()
    match_line = next(line for line in conf.splitlines() if "~*" in line)
    expect(diff.get_by_text(match_line.strip()).first).to_be_visible()
    expect(diff.get_by_text("more_clear_input_headers 'l5d-ctx-*' 'l5d-dtab' 'l5d-sample';").first).to_be_visible()
    expect(page.locator("ol.timeline")).to_contain_text("changed: nginx.conf")
    screenshot(page, "20-configmap-nginx-config")

    page.goto(reverse("pod", args=["local", kube.namespace, kube.pods("nginx")[0].metadata.name]))
    expect(page.get_by_role("heading", name=re.compile(r"^Pod nginx-"))).to_be_visible()
    expect(page.get_by_text("/etc/nginx/nginx.conf", exact=True)).to_be_visible()
    screenshot(page, "21-pod-nginx")

    page.goto(reverse("source", args=["local", kube.namespace, "secrets", "db"]))
    diff = page.locator("#version-diff")
    expect(diff.locator("section.key-diff").filter(has_text="password")).to_contain_text("changed")
    expect(diff.locator("section.key-diff").filter(has_text="user")).to_contain_text("added")
    expect(page.get_by_text("values are not shown").first).to_be_visible()
    assert "canary-value" not in page.content()
    screenshot(page, "22-secret-db")


def test_a_value_like_a_script_tag_shows_as_text(page: Page, kube, kubeconfig, transactional_db):
    kube.config_map("banner-config", {"banner": "hello"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "banner-config"}}]}
    kube.create_deployment(deployment("banner", [container], replicas=1))
    kube.wait_deployment_ready("banner")
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin")
    snapshot_ok(cluster)
    kube.edit_config_map("banner-config", {"banner": SCRIPT})
    snapshot_ok(cluster)
    user("vera", "viewer", password=PASSWORD)
    log_in(page, "vera")

    page.goto(reverse("source", args=["local", kube.namespace, "configmaps", "banner-config"]))
    expect(page.locator("#version-diff tr.changed td.new")).to_have_text(SCRIPT)
    page.goto(reverse("pod", args=["local", kube.namespace, kube.pods("banner")[0].metadata.name]))
    expect(page.get_by_role("row").filter(has_text="banner").locator("code").last).to_have_text(SCRIPT)
    screenshot(page, "23-script-value-as-text")
