"""An Argo Rollout as a kind Driftwatch reads and restarts, for real: the Argo Rollouts controller (built from the
Go module proxy by scripts/argo-rollouts) runs as a process against the local cluster with its CRDs applied, and a
Rollout whose pods read a ConfigMap through env runs on the real node. Driftwatch's snapshot calls it stale after
the ConfigMap changes; a restart sets spec.restartAt (under Driftwatch's field manager), the controller evicts and
replaces the pods, the Rollout comes back Healthy, Driftwatch calls it fresh and the new pod reads the new value.
Skipped, with the build's own words, only where the controller cannot be built."""

import io
import json
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from drift.models import AuditEvent, Cluster, Rollout, Workload
from drift.rollout import Target, plan_rollout, refresh_rollout, request_rollout
from tests import argo_rollouts
from tests.facts import user
from tests.kube_helpers import deployment, parse_env, wait_until
from tests.test_real_node import exec_in, find_real_node, on_real_node, toolbox

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.django_db,
    pytest.mark.usefixtures("private_celery_queue", "plain_http"),
]

KEY = "driftwatch.io/config-hash"
HTMX = {"HX-Request": "true", "HX-Target": "rollout-panel"}


@pytest.fixture(scope="session")
def argo_build(kubeconfig):
    folder = argo_rollouts.built()
    argo_rollouts.apply_crds(folder)
    return folder


@pytest.fixture
def argo(argo_build, kubeconfig, kube_api, namespace, tmp_path):
    find_real_node(kube_api)
    log = tmp_path / "rollouts-controller.log"
    with argo_rollouts.controller(argo_build, kubeconfig, namespace, log):
        yield argo_rollouts.Rollouts(kube_api, namespace, log)


@pytest.fixture
def cluster(kubeconfig, namespace):
    # Its snapshots read this test's namespace only: the shared cluster may hold thousands of other pods.
    return Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])


def snapshot():
    out = io.StringIO()
    call_command("snapshot", "--cluster", "local", stdout=out)
    assert out.getvalue().startswith("local: succeeded"), out.getvalue()


def verdicts(namespace, name):
    """(pod, mode, verdict) of the Rollout's rows for ConfigMap argo-config in Driftwatch's report."""
    out = io.StringIO()
    call_command("driftreport", "--json", "--cluster", "local", "--namespace", namespace, stdout=out)
    return {
        (row["pod"], row["mode"], row["verdict"])
        for row in json.loads(out.getvalue())
        if row["workload"] == {"kind": "Rollout", "name": name} and row["source"]["name"] == "argo-config"
    }


def uids(kube, app):
    return {pod.metadata.uid: pod for pod in kube.pods(app)}


def env_template(name):
    """A pod template for the real node whose container reads ConfigMap argo-config as env."""
    container = toolbox(envFrom=[{"configMapRef": {"name": "argo-config"}}])
    holder = {"spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}
    return on_real_node(holder)["spec"]["template"]


def stale_rollout(kube, argo, name, **manifest):
    """A Healthy Rollout on the real node whose one pod read LOG_LEVEL=INFO, the ConfigMap then changed to DEBUG and
    a snapshot taken: Driftwatch calls its pod stale."""
    kube.config_map("argo-config", {"LOG_LEVEL": "INFO"})
    argo.create(argo_rollouts.rollout_manifest(name, env_template(name), **manifest))
    argo.wait_healthy(name)
    snapshot()
    [pod] = kube.pods(name)
    assert pod.spec.node_name == real_node_name(kube)
    assert verdicts(kube.namespace, name) == {(pod.metadata.name, "envFrom", "fresh")}
    kube.edit_config_map("argo-config", {"LOG_LEVEL": "DEBUG"})
    snapshot()
    assert verdicts(kube.namespace, name) == {(pod.metadata.name, "envFrom", "stale")}
    return pod


def real_node_name(kube):
    return find_real_node(kube.api).metadata.name


def new_pod_reads_debug(kube, name, old_uids):
    [pod] = kube.pods(name)
    assert pod.metadata.uid not in old_uids, "the old pod is still there"
    assert pod.spec.node_name == real_node_name(kube)
    assert parse_env(exec_in(kube, pod.metadata.name, "env"))["LOG_LEVEL"] == "DEBUG"
    snapshot()
    assert verdicts(kube.namespace, name) == {(pod.metadata.name, "envFrom", "fresh")}


def test_a_stale_argo_rollout_is_restarted_by_restart_at_from_the_command_line(kube, argo, cluster):
    old = stale_rollout(kube, argo, "argo-web")
    replica_sets = {rs.metadata.uid for rs in kube.apps.list_namespaced_replica_set(kube.namespace).items}

    out = io.StringIO()
    command = ["rollout/argo-web", "-n", kube.namespace, "--actor", "olga", "--wait", "--timeout", "180"]
    call_command("rollout", *command, stdout=out)

    assert "reads ConfigMap argo-config" in out.getvalue()
    assert "restartAt: the Argo Rollouts controller evicts every pod created before the restart time" in out.getvalue()
    assert f"Rollout/argo-web -n {kube.namespace}: complete" in out.getvalue(), out.getvalue()
    rollout = Rollout.objects.get(kind="Rollout", name="argo-web", status="complete")
    healthy = argo.wait_healthy("argo-web")
    assert healthy["spec"]["restartAt"] == healthy["status"]["restartedAt"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", healthy["spec"]["restartAt"])
    assert healthy["metadata"]["annotations"][KEY] == rollout.config_hash
    # Driftwatch's own field manager owns restartAt, so Argo CD's managedFieldsManagers can leave it alone.
    [ours] = [entry for entry in healthy["metadata"]["managedFields"] if entry["manager"] == "driftwatch"]
    assert "f:restartAt" in ours["fieldsV1"]["f:spec"]
    # Restarted in place by the controller: it evicted the pod older than restartAt; no new ReplicaSet, so no canary
    # step ran; the pod itself is new.
    assert argo.said("restarting Pod that's older than restartAt Time")
    assert {rs.metadata.uid for rs in kube.apps.list_namespaced_replica_set(kube.namespace).items} == replica_sets
    new_pod_reads_debug(kube, "argo-web", {old.metadata.uid})
    actions = set(AuditEvent.objects.filter(object_name="argo-web").values_list("action", flat=True))
    assert {"rollout.requested", "rollout.completed"} <= actions

    # The same configuration again: nothing to do, nothing sent.
    _, plan = request_rollout(cluster, Target("Rollout", kube.namespace, "argo-web"), "olga")
    assert plan.outcome == "noop", plan.message
    assert argo.get("argo-web")["spec"]["restartAt"] == healthy["spec"]["restartAt"]


def test_an_argo_rollout_that_asks_for_its_steps_is_rolled_out_through_the_workload_page(kube, argo, cluster, client):
    annotations = {"driftwatch.io/restart-by": "template"}
    old = stale_rollout(kube, argo, "argo-steps", annotations=annotations)
    client.force_login(user("olga", "operator"))
    workload = Workload.objects.get(cluster=cluster, kind="Rollout", namespace=kube.namespace, name="argo-steps")

    page = client.get(reverse("workload", args=["local", kube.namespace, "Rollout", "argo-steps"]))
    assert page.status_code == 200
    assert b"Roll out Rollout/argo-steps" in page.content
    panel = client.post(reverse("rollout-plan"), {"workload": workload.pk}, headers=HTMX)
    assert "canary: a new ReplicaSet, through its 2 step(s)" in panel.content.decode()
    assert "server-side dry run accepted the patch" in panel.content.decode()

    started = client.post(reverse("rollout-start"), {"workload": workload.pk}, headers=HTMX)
    assert started.status_code == 200
    rollout = Rollout.objects.get(kind="Rollout", name="argo-steps")
    wait_until(lambda: refresh_rollout(rollout).finished, timeout=180, interval=1, what="the rollout to end")
    rollout.refresh_from_db()
    assert rollout.status == "complete", rollout.message

    healthy = argo.wait_healthy("argo-steps")
    assert healthy["spec"]["template"]["metadata"]["annotations"][KEY] == rollout.config_hash
    assert "restartAt" not in healthy["spec"]
    # Its canary ran: a second ReplicaSet (the steps' new revision), the old one scaled to nothing.
    replica_sets = kube.apps.list_namespaced_replica_set(kube.namespace).items
    assert sorted(rs.spec.replicas for rs in replica_sets) == [0, 1]
    new_pod_reads_debug(kube, "argo-steps", {old.metadata.uid})


def test_an_argo_rollout_with_a_workload_ref_reads_the_deployments_template(kube, argo, cluster):
    base = deployment("argo-base", [toolbox(envFrom=[{"configMapRef": {"name": "argo-config"}}])], replicas=0)
    base["spec"]["template"]["metadata"]["labels"] = {"app": "argo-ref"}
    base["spec"]["selector"] = {"matchLabels": {"app": "argo-ref"}}
    kube.create_deployment(on_real_node(base))
    reference = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "argo-base"}
    old = stale_rollout_by_reference(kube, argo, reference)

    plan = plan_rollout(cluster, Target("Rollout", kube.namespace, "argo-ref"))
    assert plan.outcome == "ready", plan.message
    assert [(source.kind, source.name) for source in plan.sources] == [("ConfigMap", "argo-config")]
    assert plan.pods == (old.metadata.name,)

    rollout, _ = request_rollout(cluster, Target("Rollout", kube.namespace, "argo-ref"), "olga")
    wait_until(lambda: refresh_rollout(rollout).finished, timeout=180, interval=1, what="the rollout to end")
    rollout.refresh_from_db()
    assert rollout.status == "complete", rollout.message
    assert argo.wait_healthy("argo-ref")["status"]["restartedAt"]
    assert argo.said("restarting Pod that's older than restartAt Time")
    new_pod_reads_debug(kube, "argo-ref", {old.metadata.uid})


def stale_rollout_by_reference(kube, argo, reference):
    kube.config_map("argo-config", {"LOG_LEVEL": "INFO"})
    argo.create(argo_rollouts.rollout_manifest("argo-ref", None, workloadRef=reference))
    argo.wait_healthy("argo-ref")
    snapshot()
    [pod] = kube.pods("argo-ref")
    assert pod.spec.node_name == real_node_name(kube)  # the Deployment's template: its nodeSelector and toleration
    kube.edit_config_map("argo-config", {"LOG_LEVEL": "DEBUG"})
    snapshot()
    assert verdicts(kube.namespace, "argo-ref") == {(pod.metadata.name, "envFrom", "stale")}
    return pod
