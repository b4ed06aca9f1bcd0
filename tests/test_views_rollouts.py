"""Rollout gaps closed: the Rollouts page (running and recent, filtered), the rollout page's cluster and way
back, a warning when every pod is already fresh, and an optional reason kept on the row and in the audit log."""

import re

import pytest
from django.urls import reverse

from drift.clusters import register_cluster
from drift.models import AuditEvent, Cluster, Rollout, SnapshotRun, Workload
from drift.snapshot import snapshot
from tests.facts import user
from tests.kube_helpers import deployment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


def made(cluster, name, status, namespace="demo", **fields):
    return Rollout.objects.create(
        cluster=cluster, kind="Deployment", namespace=namespace, name=name, requested_by="olga",
        annotation_key="driftwatch.io/config-hash", status=status, **fields,
    )  # fmt: skip


@pytest.fixture
def history():
    local = Cluster.objects.create(name="local", kubeconfig_path="/nonexistent")
    staging = Cluster.objects.create(name="staging", kubeconfig_path="/nonexistent")
    made(local, "env-demo", Rollout.Status.IN_PROGRESS, reason="pick up the new log level")
    made(local, "nginx", Rollout.Status.COMPLETE)
    made(staging, "api", Rollout.Status.FAILED, namespace="shop")
    return local, staging


def listed(content: str) -> set[str]:
    return set(re.findall(r'<tr class="rollout [^"]+">.*?>Deployment/([\w-]+)</a>', content, re.S))


def test_the_rollouts_page_requires_login(client):
    response = client.get(reverse("rollouts"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_it_lists_running_and_recent_rollouts_with_their_cluster_and_reason(client, history):
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("rollouts")).content.decode()
    assert listed(content) == {"env-demo", "nginx", "api"}
    assert "pick up the new log level" in content
    assert "staging" in content
    assert f'href="{reverse("rollouts")}"' in content  # the navigation links to it


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "running"}, {"env-demo"}),
        ({"state": "finished"}, {"nginx", "api"}),
        ({"state": "failed"}, {"api"}),
        ({"cluster": "staging"}, {"api"}),
        ({"namespace": "demo"}, {"env-demo", "nginx"}),
        ({"cluster": "local", "state": "complete"}, {"nginx"}),
    ],
)
def test_it_filters_by_cluster_namespace_and_state(client, history, query, expected):
    client.force_login(user("vera", "viewer"))
    assert listed(client.get(reverse("rollouts"), query).content.decode()) == expected


def test_a_bad_filter_is_left_out_and_said(client, history):
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("rollouts"), {"state": "rotten", "cluster": "../x"}).content.decode()
    assert "Some filters were left out" in content
    assert "State: Select a valid choice." in content
    assert listed(content) == {"env-demo", "nginx", "api"}


def test_the_rollout_page_names_its_cluster_and_links_back_to_the_workload(client, history):
    rollout = Rollout.objects.get(name="env-demo")
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("rollout", args=[rollout.pk])).content.decode()
    assert "in demo of cluster local" in content
    back = reverse("workload", args=["local", "demo", "Deployment", "env-demo"])
    assert f'<a class="back" href="{back}">Back to Deployment/env-demo</a>' in content
    assert "(reason: pick up the new log level)" in content


@pytest.mark.cluster
@pytest.mark.usefixtures("private_celery_queue")
def test_every_pod_fresh_is_warned_of_and_a_reason_goes_to_the_audit_log(client, kube, kubeconfig):
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container], replicas=1))
    kube.wait_deployment_ready("env-demo")
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin")
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    workload = Workload.objects.get(cluster=cluster, namespace=kube.namespace, name="env-demo")
    client.force_login(user("olga", "operator"))
    panel = client.post(reverse("rollout-plan"), {"workload": workload.pk}).content.decode()
    assert "already runs the current configuration: a rollout would only restart them" in panel
    assert 'name="reason"' in panel

    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    panel = client.post(reverse("rollout-plan"), {"workload": workload.pk}).content.decode()
    assert "Confirm rollout" in panel
    assert "already runs the current configuration" not in panel  # its pod is stale: the rollout is the cure

    client.post(reverse("rollout-start"), {"workload": workload.pk, "reason": "  test the new node pool  "})
    rollout = Rollout.objects.get(cluster=cluster, name="env-demo")
    assert rollout.reason == "test the new node pool"
    requested = AuditEvent.objects.get(action=AuditEvent.Action.ROLLOUT_REQUESTED, object_name="env-demo")
    assert requested.detail["reason"] == "test the new node pool"
    assert requested.actor == "olga"
    assert "reason: test the new node pool" in requested.message
