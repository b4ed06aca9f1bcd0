"""The rollout panels against the real cluster: Roll out shows the impact and a server-side dry run,
Confirm rollout patches and the progress polls until it stops with 286; refusals (paused Deployment,
RBAC-forbidden service account, bare pod) and no-ops are explained in the panel and audited."""

import re
import uuid

import pytest
from django.urls import reverse

from drift.models import AuditEvent, Cluster, Rollout, Workload
from drift.tasks import track_rollouts
from tests.facts import user
from tests.kube_helpers import wait_until
from tests.test_rollout_cluster import env_app, read_only_cluster, ready_app

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.django_db,
    pytest.mark.usefixtures("plain_http", "private_celery_queue"),
]

SCOPE = "local/{}"  # an operator scope names the cluster

HTMX = {"HX-Request": "true", "HX-Target": "rollout-panel"}


@pytest.fixture
def operator(client, kubeconfig):
    Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))
    client.force_login(user("olga", "operator"))
    return client


def form(namespace, name="env-demo", kind="Deployment", cluster="local"):
    """The Roll out form: it names the workload Driftwatch knows, by primary key."""
    workload, _ = Workload.objects.get_or_create(
        cluster=Cluster.objects.get(name=cluster), kind=kind, namespace=namespace, name=name
    )
    return {"workload": workload.pk}


def names_form(namespace, name="env-demo", kind="Deployment", cluster="local"):
    """What the form posted before rollouts named a workload by id: names the client chose."""
    return {"cluster": cluster, "namespace": namespace, "kind": kind, "name": name}


def text(response):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_roll_out_confirm_and_follow_to_complete(operator, kube):
    ready_app(kube)
    pods = sorted(pod.metadata.name for pod in kube.pods("env-demo"))

    panel = operator.post(reverse("rollout-plan"), form(kube.namespace), headers=HTMX)

    content = text(panel)
    assert panel.content.decode().lstrip().startswith('<section id="rollout-panel"')
    assert f"Roll out Deployment/env-demo in {kube.namespace} of cluster local?" in content
    assert all(pod in content for pod in pods)
    assert "RollingUpdate" in content
    assert "server-side dry run accepted the patch" in content
    assert "Confirm rollout" in content
    assert not Rollout.objects.exists(), "showing the impact must not roll out"

    started = operator.post(reverse("rollout-start"), form(kube.namespace), headers=HTMX)
    assert started["HX-Trigger"] == '{"rollout-started": {}}'
    rollout = Rollout.objects.get()
    assert f'hx-get="{reverse("rollout", args=[rollout.pk])}" hx-trigger="every 1s"' in started.content.decode()

    def poll():
        track_rollouts()  # beat's part: a GET only reads
        response = operator.get(reverse("rollout", args=[rollout.pk]), headers=HTMX)
        return response if response.status_code == 286 else None

    final = wait_until(poll, what="the progress to stop polling")
    assert "rollout-finished" in final["HX-Trigger"]
    assert "Complete" in text(final)
    assert "hx-trigger" not in final.content.decode()
    assert re.search(r'<progress aria-labelledby="rollout-\d+-updated" max="2" value="2">', final.content.decode())
    assert {e.action for e in AuditEvent.objects.filter(actor="olga")} >= {"rollout.requested", "rollout.completed"}

    again = operator.post(reverse("rollout-plan"), form(kube.namespace), headers=HTMX)
    assert "No rollout needed" in text(again)
    assert "nothing was sent" in text(again)
    assert "Confirm rollout" not in text(again)
    assert AuditEvent.objects.filter(action="rollout.noop", actor="olga").count() == 1


def test_without_javascript_the_same_urls_render_whole_pages(operator, kube):
    ready_app(kube, replicas=1)
    page = operator.post(reverse("rollout-plan"), form(kube.namespace))
    assert b"<html" in page.content
    assert b"Confirm rollout" in page.content


def test_a_paused_deployment_is_refused_in_the_panel(operator, kube):
    ready_app(kube, replicas=1)
    kube.apps.patch_namespaced_deployment("env-demo", kube.namespace, {"spec": {"paused": True}})

    content = text(operator.post(reverse("rollout-plan"), form(kube.namespace), headers=HTMX))

    assert "Rollout refused" in content
    assert f"kubectl -n {kube.namespace} rollout resume deployment/env-demo" in content
    assert "Confirm rollout" not in content
    assert "Recorded in the audit log" in content
    assert AuditEvent.objects.get(action="rollout.refused").actor == "olga"


def test_a_403_from_the_api_is_refused_and_names_the_missing_permission(operator, kube, kube_api, kubeconfig, tmp_path):
    ready_app(kube, replicas=1)
    read_only_cluster(kube, kube_api, kubeconfig, tmp_path)  # registered as "limited"

    content = text(operator.post(reverse("rollout-plan"), form(kube.namespace, cluster="limited"), headers=HTMX))

    assert "Rollout refused" in content
    assert f"Missing permission: patch deployments.apps in {kube.namespace}" in content
    refused = AuditEvent.objects.get(action="rollout.refused")
    assert refused.cluster_name == "limited"
    assert refused.detail["permission"] == f"patch deployments.apps in {kube.namespace}"


def test_a_bare_pod_is_refused_with_what_works_instead(operator, kube):
    kube.core.create_namespaced_pod(
        kube.namespace, {"metadata": {"name": "lonely"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    )
    content = text(operator.post(reverse("rollout-plan"), form(kube.namespace, "lonely", "Pod"), headers=HTMX))
    assert "A bare Pod cannot be rolled out" in content
    assert "run it under a Deployment" in content
    assert AuditEvent.objects.filter(action="rollout.refused", object_kind="Pod").count() == 1


def test_an_argo_cd_workload_gets_a_warning(operator, kube):
    kube.config_map("env-config", {"log_level": "INFO"})
    manifest = env_app("gitops", replicas=1)
    manifest["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:x/gitops"}
    kube.create_deployment(manifest)
    kube.wait_deployment_ready("gitops")
    content = text(operator.post(reverse("rollout-plan"), form(kube.namespace, "gitops"), headers=HTMX))
    assert "Managed by Argo CD (application shop)" in content
    assert "Confirm rollout" in content


def test_a_bulk_rollout_shows_every_plan_then_follows_the_batch(operator, kube):
    kube.config_map("env-config", {"log_level": "INFO"})
    for name in ("one", "two"):
        kube.create_deployment(env_app(name, replicas=1))
    for name in ("one", "two"):
        kube.wait_deployment_ready(name)
    cluster = Cluster.objects.get(name="local")
    ids = [
        Workload.objects.create(cluster=cluster, kind="Deployment", namespace=kube.namespace, name=name).pk
        for name in ("one", "two")
    ]

    plan = text(operator.post(reverse("rollout-bulk-plan"), {"workload": ids}, headers=HTMX))
    assert "Roll out 2 workloads?" in plan
    assert "batches of 3" in plan
    assert plan.count("server-side dry run accepted") == 2
    assert "Confirm rollout of 2 workloads" in plan

    started = operator.post(reverse("rollout-bulk-start"), {"workload": ids}, headers=HTMX)
    batch = Rollout.objects.first().batch
    assert f'hx-get="{reverse("rollout-batch", args=[batch])}"' in started.content.decode()

    def poll():
        track_rollouts()  # beat's part: a GET only reads
        response = operator.get(reverse("rollout-batch", args=[batch]), headers=HTMX)
        return response if response.status_code == 286 else None

    final = wait_until(poll, what="the batch to finish")
    assert "Bulk rollout: finished" in text(final)
    assert list(Rollout.objects.values_list("status", flat=True)) == ["complete", "complete"]
    assert AuditEvent.objects.filter(action="rollout.requested", actor="olga").count() == 2


@pytest.fixture
def victim(kube_api):
    """A Deployment `target` in a namespace of its own, which the operator may not touch."""
    from kubernetes import client as k8s

    from tests.kube_helpers import Kube, deployment

    name = f"victim-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name, "labels": {"driftwatch.io/test": "true"}}})
    other = Kube(kube_api, name)
    other.create_deployment(deployment("target", [{"name": "app", "image": "nginx:1.27"}]))
    other.wait_deployment_ready("target")
    yield other
    core.delete_namespace(name, propagation_policy="Background")


def test_a_name_that_climbs_out_of_the_namespace_patches_nothing(client, kube, kubeconfig, victim):
    """The reproduced attack: an operator limited to one namespace names ../../OTHER/deployments/target."""
    Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))
    client.force_login(user("olga", "operator", namespaces=[SCOPE.format(kube.namespace)]))
    forged = names_form(kube.namespace, name=f"../../{victim.namespace}/deployments/target")

    for url in (reverse("rollout-plan"), reverse("rollout-start")):
        response = client.post(url, forged, headers=HTMX)
        assert response.status_code in (403, 404), (url, response.status_code)

    template = victim.apps.read_namespaced_deployment("target", victim.namespace).spec.template
    assert not template.metadata.annotations
    assert AuditEvent.objects.filter(action="access.denied", actor="olga").count() == 2
    assert not Rollout.objects.exists()


def test_restarting_the_stale_pods_is_authorised_on_the_workload_found_by_its_id(client, kube, kubeconfig):
    """An operator of another namespace and a viewer get 403 from both eviction POSTs; nothing is recorded or sent."""
    ready_app(kube, replicas=1)
    Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))
    pods = {pod.metadata.uid for pod in kube.pods("env-demo")}
    for who in (user("vera", "viewer"), user("oleg", "operator", namespaces=["local/elsewhere"])):
        client.force_login(who)
        for url in (reverse("evict-plan"), reverse("evict-start")):
            response = client.post(url, form(kube.namespace) | {"at_once": "1"}, headers=HTMX)
            assert response.status_code == 403, (who, url, response.status_code)
    assert not Rollout.objects.exists()
    assert {pod.metadata.uid for pod in kube.pods("env-demo")} == pods


def test_a_restart_of_the_stale_pods_with_none_stale_is_a_recorded_no_op(operator, kube):
    ready_app(kube, replicas=1)  # Driftwatch knows the workload (by id) but judged none of its pods stale

    panel = operator.post(reverse("evict-plan"), form(kube.namespace) | {"at_once": "1"}, headers=HTMX)

    assert "No stale pod to restart" in text(panel)
    [rollout] = Rollout.objects.all()
    assert (rollout.action, rollout.status) == ("evict", "noop")
    [noop] = AuditEvent.objects.filter(action="rollout.noop")
    assert noop.detail["action"] == "evict"


def test_a_bad_pods_at_a_time_is_refused_with_a_clear_message(operator, kube):
    ready_app(kube, replicas=1)

    panel = operator.post(reverse("evict-plan"), form(kube.namespace) | {"at_once": "lots"}, headers=HTMX)

    assert "Pods at once must be between 1 and 50" in text(panel)
