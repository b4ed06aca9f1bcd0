"""The Helm chart's two narrower modes, as the code honours them on the local cluster: a read-only cluster (RBAC
without pods/exec and patch) is never exec'd into and never rolled out, and says so; a cluster read in listed
namespaces only (a Role in each, no cluster-wide list) reads nothing else and says another namespace is not
visible."""

import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse
from kubernetes import client as k8s

from drift.clusters import register_cluster
from drift.models import AuditEvent, Cluster, Pod, SnapshotRun
from drift.snapshot import snapshot
from drift.snapshot.probing import READ_ONLY
from drift.verdicts import drift_rows
from tests.facts import user
from tests.kube_helpers import deployment

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


def env_app(kube, name: str) -> None:
    kube.config_map(f"{name}-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": f"{name}-config"}}]}
    kube.create_deployment(deployment(name, [container]))
    kube.wait_deployment_ready(name)


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_a_read_only_cluster_is_never_exec_d_into_nor_rolled_out_and_says_so(kubeconfig, kube):
    env_app(kube, "env-demo")
    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig), read_only=True)

    run = snapshot(cluster)
    assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
    assert run.exec_probes == 0
    [row] = [r for r in drift_rows(cluster, namespace=kube.namespace) if r.source.name == "env-demo-config"]
    assert (row.verdict, row.evidence) == ("fresh", "inferred")
    assert row.reason.startswith(READ_ONLY) or READ_ONLY in row.reason, row.reason

    client = Client()
    client.force_login(user("ops", "operator", ["*/*"]))
    workload = reverse("workload", args=["local", kube.namespace, "Deployment", "env-demo"])
    page = text(client.get(workload))
    assert "Roll out Deployment/env-demo" not in page
    assert "Cluster local is read-only" in page
    assert "Read-only: Driftwatch does not exec into pods or roll out in local" in text(client.get(reverse("overview")))

    workload_pk = row.workload_id
    template_before = kube.apps.read_namespaced_deployment("env-demo", kube.namespace).spec.template.metadata
    response = client.post(reverse("rollout-plan"), {"workload": workload_pk})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED, message__contains="read-only").exists()
    template_after = kube.apps.read_namespaced_deployment("env-demo", kube.namespace).spec.template.metadata
    assert template_after.annotations == template_before.annotations


def test_a_namespaced_cluster_reads_only_its_namespaces_and_says_others_are_not_visible(kubeconfig, kube, kube_api):
    env_app(kube, "inside")
    core = k8s.CoreV1Api(kube_api)
    outside = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": outside, "labels": {"driftwatch.io/test": "true"}}})
    try:
        kube.__class__(kube_api, outside).config_map("outside-config", {"a": "b"})
        cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig), namespaces=[kube.namespace])

        run = snapshot(cluster)
        assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
        namespaces = set(Pod.objects.filter(cluster=cluster).values_list("namespace", flat=True))
        assert namespaces == {kube.namespace}
        assert run.api_calls < 12, "one LIST per resource in the one namespace, plus nodes; no cluster-wide LIST"

        client = Client()
        client.force_login(user("viewer", "viewer"))
        page = text(client.get(reverse("overview"), {"namespace": outside}))
        assert f"Namespace {outside} is not visible in local" in page
        assert f"Reads only namespace {kube.namespace}" in text(client.get(reverse("overview")))
    finally:
        core.delete_namespace(outside, propagation_policy="Background")


@pytest.mark.django_db
def test_an_emptied_namespace_list_in_admin_means_every_namespace(rf, admin_user):
    from django.contrib import admin
    from django.forms.models import model_to_dict

    cluster = Cluster.objects.create(name="local", kubeconfig_path="/nonexistent", namespaces=["shop"])
    request = rf.get("/admin/")
    request.user = admin_user
    form_class = admin.site._registry[Cluster].get_form(request, cluster)
    data = {k: v for k, v in model_to_dict(cluster).items() if v is not None and k != "created_at"}
    data |= {"created_at_0": f"{cluster.created_at:%Y-%m-%d}", "created_at_1": f"{cluster.created_at:%H:%M:%S}"}
    data |= {"namespaces": "", "ignored_config_maps": "[]"}  # the textarea emptied, as a browser posts it
    form = form_class(data=data, instance=cluster)
    assert form.is_valid(), form.errors
    form.save()
    cluster.refresh_from_db()
    assert cluster.namespaces == []
