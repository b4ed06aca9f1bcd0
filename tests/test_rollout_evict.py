"""Restarting only what is stale, and being a good citizen of GitOps, on the real control plane: Driftwatch's
writes carry its field manager, a workload another controller owns is refused with the owner named, and the
eviction action replaces the stale pods only (PodDisruptionBudgets respected), proved from pod UIDs."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from kubernetes import client as k8s

from drift.models import AuditEvent, Cluster, Rollout, RolloutWindow
from drift.rollout import Target, plan_eviction, refresh_rollout, request_eviction, request_rollout
from tests.kube_helpers import deployment, parse_env, wait_until
from tests.test_real_node import exec_in, find_real_node, on_real_node, toolbox
from tests.test_rollout_cluster import env_app, follow, ready_app

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.usefixtures("private_celery_queue")]

KEY = "driftwatch.io/config-hash"


@pytest.fixture
def cluster(kubeconfig, namespace):
    # Its snapshots read this test's namespace only: the shared cluster may hold thousands of other pods.
    return Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])


def managers(kube, name):
    found = kube.apps.read_namespaced_deployment(name, kube.namespace).metadata.managed_fields or []
    return {entry.manager: entry for entry in found}


def test_the_patched_workloads_managed_fields_name_driftwatch(kube, cluster):
    ready_app(kube, replicas=1)
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})

    rollout, _ = request_rollout(cluster, Target("Deployment", kube.namespace, "env-demo"), "olga")
    assert rollout.status == "in_progress", rollout.message

    entry = managers(kube, "env-demo").get("driftwatch")
    assert entry is not None, f"managers: {sorted(managers(kube, 'env-demo'))}"
    assert entry.operation == "Update"
    # The field it owns is the annotation it wrote, so Argo CD's managedFieldsManagers can single it out.
    owned = entry.fields_v1["f:spec"]["f:template"]["f:metadata"]["f:annotations"]
    assert f"f:{KEY}" in owned
    follow(rollout)


def test_a_deployment_another_controller_owns_is_refused_with_its_owner_named(kube, cluster):
    owner = kube.core.create_namespaced_config_map(kube.namespace, {"metadata": {"name": "web-operator"}})
    kube.config_map("env-config", {"log_level": "INFO"})
    manifest = deployment(
        "owned", [{"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}]
    )
    manifest["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "web-operator", "uid": owner.metadata.uid, "controller": True}
    ]
    kube.create_deployment(manifest)
    kube.wait_deployment_ready("owned")
    before = kube.apps.read_namespaced_deployment("owned", kube.namespace).metadata.generation

    rollout, plan = request_rollout(cluster, Target("Deployment", kube.namespace, "owned"), "olga")

    assert rollout.status == "refused"
    assert "owned by ConfigMap/web-operator; it would revert the change" in rollout.message
    assert plan.message == rollout.message
    assert kube.apps.read_namespaced_deployment("owned", kube.namespace).metadata.generation == before
    [refused] = AuditEvent.objects.filter(action="rollout.refused", object_name="owned")
    assert "ConfigMap/web-operator" in refused.message


def snapshot():
    out = io.StringIO()
    call_command("snapshot", "--cluster", "local", stdout=out)
    assert out.getvalue().startswith("local: succeeded"), out.getvalue()


def follow_eviction(rollout, timeout=180):
    def ended():
        nonlocal rollout
        rollout = refresh_rollout(rollout)
        return rollout.finished

    wait_until(ended, timeout=timeout, interval=1, what=f"rollout {rollout} to end")
    return rollout


def uids(kube, app):
    return {pod.metadata.uid: pod for pod in kube.pods(app)}


def test_a_split_deployment_on_the_real_node_loses_only_its_stale_pods_and_its_pdb_holds(kube, kube_api, cluster):
    find_real_node(kube_api)
    kube.config_map("split-config", {"LOG_LEVEL": "INFO"})
    container = toolbox(envFrom=[{"configMapRef": {"name": "split-config"}}])
    kube.create_deployment(on_real_node(deployment("split", [container], replicas=3)))
    kube.wait_deployment_ready("split")
    snapshot()
    # Split: the config changes, one pod is replaced by hand (it reads the new value), two keep the old one.
    kube.edit_config_map("split-config", {"LOG_LEVEL": "DEBUG"})
    first = sorted(kube.pods("split"), key=lambda pod: pod.metadata.name)[0]
    kube.core.delete_namespaced_pod(first.metadata.name, kube.namespace)
    wait_until(lambda: first.metadata.uid not in uids(kube, "split"), what="the hand-deleted pod gone")
    kube.wait_deployment_ready("split")
    snapshot()
    before = uids(kube, "split")
    [fresh_uid] = [
        uid for uid, pod in before.items() if pod.metadata.creation_timestamp > first.metadata.creation_timestamp
    ]
    fresh = before[fresh_uid]
    stale = set(before) - {fresh_uid}
    # At most one pod of the three may be down: the second eviction of a group of two meets a 429.
    policy = k8s.PolicyV1Api(kube_api)
    policy.create_namespaced_pod_disruption_budget(
        kube.namespace,
        {"metadata": {"name": "split"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "split"}}}},
    )
    wait_until(
        lambda: (
            (s := policy.read_namespaced_pod_disruption_budget("split", kube.namespace).status).observed_generation
            and s.disruptions_allowed == 1
        ),
        what="the disruption budget's status",
    )
    target = Target("Deployment", kube.namespace, "split")

    plan = plan_eviction(cluster, target, at_once=2)
    assert plan.ready, plan.message
    assert set(plan.pod_uids) == stale
    assert plan.staying == (fresh.metadata.name,)
    [source] = plan.previews[0].sources
    assert (source.kind, source.name) == ("ConfigMap", "split-config")
    assert [(key.key, key.status, key.before, key.after) for key in source.keys] == [
        ("LOG_LEVEL", "changed", "INFO", "DEBUG")
    ]

    rollout, _ = request_eviction(cluster, target, "olga", at_once=2)
    assert rollout.status == "in_progress", rollout.message
    [requested] = AuditEvent.objects.filter(action="rollout.requested", object_name="split")
    assert requested.detail["pods"] == sorted(pod.metadata.name for uid, pod in before.items() if uid in stale)
    assert requested.detail["staying"] == [fresh.metadata.name]
    rollout = follow_eviction(rollout)

    assert rollout.status == "complete", rollout.message
    assert rollout.disruption_waits >= 1, "the budget never said 429: the test proves nothing about it"
    after = uids(kube, "split")
    assert fresh_uid in after, "the fresh pod was evicted"
    assert after[fresh_uid].metadata.name == fresh.metadata.name
    assert after[fresh_uid].status.start_time == fresh.status.start_time
    assert stale.isdisjoint(after), "a stale pod is still there"
    assert len(after) == 3
    for pod in after.values():
        assert parse_env(exec_in(kube, pod.metadata.name, "env"))["LOG_LEVEL"] == "DEBUG"
    assert {p["uid"] for p in rollout.evicted} == stale
    [completed] = AuditEvent.objects.filter(action="rollout.completed", object_name="split")
    assert completed.detail["disruption_waits"] == rollout.disruption_waits


def statefulset(name, config_map, replicas=2):
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": config_map}}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def test_an_on_delete_statefulset_is_fixed_through_the_command_line(kube, cluster):
    kube.config_map("db-config", {"mode": "primary"})
    kube.apps.create_namespaced_stateful_set(kube.namespace, statefulset("db", "db-config"))
    wait_until(lambda: len(kube.ready_pods("db")) == 2, what="db's two pods Ready")
    snapshot()
    kube.edit_config_map("db-config", {"mode": "replica"})
    snapshot()
    before = uids(kube, "db")
    # The template patch restarts nothing here; the command says so and exits non-zero.
    with pytest.raises(CommandError, match="OnDelete"):
        call_command("rollout", "sts/db", "-n", kube.namespace, "--actor", "olga", stdout=io.StringIO())

    out = io.StringIO()
    command = ["sts/db", "-n", kube.namespace, "--actor", "olga", "--pods", "stale", "--wait", "--timeout", "120"]
    call_command("rollout", *command, stdout=out)

    assert "pods to evict: db-0, db-1" in out.getvalue(), out.getvalue()
    assert "ConfigMap db-config: mode (changed)" in out.getvalue()
    assert "complete" in out.getvalue().splitlines()[-1]
    after = uids(kube, "db")
    assert {pod.metadata.name for pod in after.values()} == {"db-0", "db-1"}  # the same names...
    assert set(after).isdisjoint(before)  # ...on new pods
    rollout = Rollout.objects.get(name="db", action="evict")
    assert (rollout.status, rollout.desired, rollout.updated) == ("complete", 2, 2)


def test_the_command_names_the_owner_and_the_window_when_it_refuses(kube, cluster):
    owner = kube.core.create_namespaced_config_map(kube.namespace, {"metadata": {"name": "web-operator"}})
    kube.config_map("env-config", {"log_level": "INFO"})
    manifest = env_app("owned", replicas=1)
    manifest["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "web-operator", "uid": owner.metadata.uid, "controller": True}
    ]
    kube.create_deployment(manifest)
    kube.wait_deployment_ready("owned")

    with pytest.raises(CommandError, match="owned by ConfigMap/web-operator"):
        call_command("rollout", "deployment/owned", "-n", kube.namespace, "--actor", "olga", stdout=io.StringIO())

    RolloutWindow.objects.create(cluster=cluster, namespace=kube.namespace, weekdays="", start="00:00", end="00:01")
    with pytest.raises(CommandError, match="Outside the rollout windows"):
        call_command(
            "rollout", "deployment/owned", "-n", kube.namespace, "--actor", "olga", "--pods", "stale",
            stdout=io.StringIO(),
        )  # fmt: skip
