"""Roll out's confirmation shows what changes for each pod (issue 20 item 7, for the template action): per stale
pod, grouped by source, the keys that change (values for a ConfigMap from the stored versions, key names only for
a Secret) and who made each change; and the fresh pods a full rollout restarts anyway. On the real cluster, after
real snapshots."""

import html
import io
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from drift.models import Cluster, Workload
from tests.facts import user
from tests.kube_helpers import deployment, wait_until

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.django_db,
    pytest.mark.usefixtures("plain_http", "private_celery_queue"),
]

HTMX = {"HX-Request": "true", "HX-Target": "rollout-panel"}
SECRET_VALUE = "hunter2-old"
NEW_SECRET_VALUE = "hunter2-new"


def snapshot():
    out = io.StringIO()
    call_command("snapshot", "--cluster", "local", stdout=out)
    assert out.getvalue().startswith("local: succeeded"), out.getvalue()


@pytest.fixture
def split(kube, kubeconfig):
    """env-demo on two pods reads env-config and db-secret through envFrom; both change, and one pod is replaced
    by hand (it reads the new contents): one stale, one fresh."""
    Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[kube.namespace])
    kube.config_map("env-config", {"log_level": "INFO", "mode": "safe"})
    kube.secret("db-secret", {"password": SECRET_VALUE})
    container = {
        "name": "app",
        "image": "nginx:1.27",
        "envFrom": [{"configMapRef": {"name": "env-config"}}, {"secretRef": {"name": "db-secret"}}],
    }
    kube.create_deployment(deployment("env-demo", [container], replicas=2))
    kube.wait_deployment_ready("env-demo")
    snapshot()
    kube.edit_config_map("env-config", {"log_level": "DEBUG", "mode": "safe"})
    kube.edit_secret("db-secret", {"password": NEW_SECRET_VALUE})
    replaced = sorted(kube.pods("env-demo"), key=lambda pod: pod.metadata.name)[0]
    kube.core.delete_namespaced_pod(replaced.metadata.name, kube.namespace)
    wait_until(lambda: replaced.metadata.uid not in {p.metadata.uid for p in kube.pods("env-demo")}, what="pod gone")
    kube.wait_deployment_ready("env-demo")
    snapshot()
    pods = kube.pods("env-demo")
    [fresh] = [p for p in pods if p.metadata.creation_timestamp > replaced.metadata.creation_timestamp]
    [stale] = [p for p in pods if p is not fresh]
    return fresh.metadata.name, stale.metadata.name


def item(content: str, css_class: str, pod: str) -> str:
    """The <li> of `pod` inside the <ul class="... css_class">."""
    [listing] = re.findall(rf'<ul class="pods {css_class}">(.*?)</ul>', content, re.S)
    found = re.search(rf'<li data-pod="{re.escape(pod)}">(.*?)</li>', listing, re.S)
    assert found, f"{pod} not in {css_class}"
    return found.group(1)


def text(markup: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)).strip())


def test_roll_out_shows_per_pod_what_changes_by_source_and_who_changed_it(client, kube, split):
    fresh, stale = split
    client.force_login(user("olga", "operator"))
    workload = Workload.objects.get(kind="Deployment", namespace=kube.namespace, name="env-demo")

    response = client.post(reverse("rollout-plan"), {"workload": workload.pk}, headers=HTMX)

    content = response.content.decode()
    assert response.status_code == 200
    assert "2: 1 picks up a change, 1 restarted anyway" in text(content)
    changed = item(content, "changed-pods", stale)
    config = text(re.search(r'data-source="ConfigMap/env-config">(.*?)</div>', changed, re.S).group(1))
    assert "log_level changed INFO DEBUG" in config
    assert "mode" not in config  # unchanged keys are not listed
    assert re.search(
        r"Picks up: version #2 by OpenAPI-Generator \(client; no person known\) at \d{4}-\d\d-\d\d \d\d:\d\d", config
    ), config
    secret = text(re.search(r'data-source="Secret/db-secret">(.*?)</div>', changed, re.S).group(1))
    assert "password changed" in secret
    assert "key names only" in secret
    assert SECRET_VALUE not in content and NEW_SECRET_VALUE not in content
    assert text(item(content, "restarted-anyway", fresh)) == f"{fresh} fresh"
    assert fresh not in re.search(r'<ul class="pods changed-pods">(.*?)</ul>', content, re.S).group(1)
