"""The pod page tells a true history, in a browser, against the live server and the real cluster: after a
ConfigMap change a container "started with" the version that was current when it started (never the one written
after), a volume says what it reads since; times read relative ("3 s ago", "stale for 12 s") with the absolute
time and its zone on hover; and the page brings a change in by itself, without a reload."""

import re
import time

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from drift.clusters import register_cluster
from drift.models import Cluster
from tests.browser.conftest import log_in, screenshot
from tests.browser.test_journeys import snapshot_ok
from tests.facts import PASSWORD, user
from tests.kube_helpers import deployment

pytestmark = [pytest.mark.browser, pytest.mark.cluster]

ABSOLUTE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
RELATIVE = re.compile(r"^(just now|\d+ (s|min|h)( \d+ min)? ago|\d+ days? ago)$")


@pytest.fixture
def history_demo(kube, kubeconfig, transactional_db) -> Cluster:
    """history-demo reads env-config through envFrom and mounts special-config as a volume; Driftwatch has seen
    the pod and the first version of both. What it started with is told by times alone, so this waits for no
    exec (a probe, when it answers, only adds what the container holds)."""
    kube.config_map("env-config", {"log_level": "INFO"})
    kube.config_map("special-config", {"special.how": "very"})
    container = {
        "name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/config"}],
    }  # fmt: skip
    volumes = [{"name": "config", "configMap": {"name": "special-config"}}]
    kube.create_deployment(deployment("history-demo", [container], volumes))
    kube.wait_deployment_ready("history-demo")
    # Only the test's namespace: a snapshot of the shared cluster's every pod (thousands when a benchmark runs
    # beside the tests) would probe them all; this page is about one pod.
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin", namespaces=[kube.namespace])
    snapshot_ok(cluster)
    time.sleep(1.1)  # the edits land in a later whole second than the container's start, as times are recorded
    return cluster


def pod_url(kube) -> str:
    (pod,) = kube.ready_pods("history-demo")
    return reverse("pod", args=["local", kube.namespace, pod.metadata.name])


def edit_both(kube, cluster: Cluster) -> None:
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    kube.edit_config_map("special-config", {"special.how": "extremely"})
    snapshot_ok(cluster)


def test_after_a_change_the_pod_started_with_the_version_current_at_its_start(page: Page, kube, history_demo):
    edit_both(kube, history_demo)
    user("lead", "viewer", password=PASSWORD)
    log_in(page, "lead")
    page.goto(pod_url(kube))
    lines = page.locator("ul.started-with li")
    env = lines.filter(has_text="ConfigMap env-config")
    volume = lines.filter(has_text="ConfigMap special-config")
    expect(env).to_contain_text(re.compile(r"app started with ConfigMap env-config #1,\s+written"))
    expect(volume).to_contain_text(re.compile(r"app started with ConfigMap special-config #1,\s+written"))
    for line in (env, volume):
        expect(line).not_to_contain_text("started with ConfigMap env-config #2")
        expect(line).not_to_contain_text("started with ConfigMap special-config #2")
    # #1's resourceVersion is the detail of its name, on hover.
    expect(env.locator("span.version").first).to_have_attribute("title", re.compile(r"^resourceVersion \d+$"))
    # The env var runs the old value: stale, and the page says DEBUG is what env-config holds now.
    expect(page.locator("#env-title + table")).to_contain_text("DEBUG")
    screenshot(page, "50-pod-started-with-after-a-change")


def test_times_read_relative_with_the_absolute_time_and_its_zone_on_hover(page: Page, kube, history_demo):
    edit_both(kube, history_demo)
    user("lead", "viewer", password=PASSWORD)
    log_in(page, "lead")
    page.goto(reverse("workload", args=["local", kube.namespace, "Deployment", "history-demo"]))
    row = page.locator("#workload-pods tbody.pod tr", has_text="env-config")
    stale_for = row.locator("td").last.locator("time")
    expect(stale_for).to_have_text(re.compile(r"^\d+ s$"))  # "for 3 s": the span since the change
    expect(stale_for).to_have_attribute("title", ABSOLUTE)
    stale_for.hover()
    screenshot(page, "51-workload-stale-for")

    page.goto(pod_url(kube))
    started = page.locator(".muted", has_text="Node").locator("time")
    expect(started).to_have_text(RELATIVE)
    expect(started).to_have_attribute("title", ABSOLUTE)
    expect(started).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"))
    for moment in page.locator("ul.started-with time").all():
        assert RELATIVE.match(moment.inner_text()), moment.inner_text()
        assert ABSOLUTE.match(moment.get_attribute("title") or ""), moment.get_attribute("title")


def test_the_pod_page_brings_a_change_in_by_itself(page: Page, kube, history_demo):
    user("lead", "viewer", password=PASSWORD)
    log_in(page, "lead")
    page.goto(pod_url(kube))
    env = page.locator("#env-title + table")
    expect(env).to_contain_text("INFO")
    expect(env).not_to_contain_text("DEBUG")
    page.evaluate("window.driftwatchKept = 'the same page'")  # gone if the page were loaded again

    edit_both(kube, history_demo)
    expect(env).to_contain_text("DEBUG", timeout=20_000)  # the body polls every 5 s
    expect(env.locator(".verdict.stale").first).to_be_visible()
    assert page.evaluate("window.driftwatchKept") == "the same page", "updated in place, not reloaded"
    screenshot(page, "52-pod-updated-by-itself")
