"""Restarting only what is stale, and being a good citizen of GitOps, on the real control plane: Driftwatch's
writes carry its field manager, a workload another controller owns is refused with the owner named, and the
eviction action replaces the stale pods only (PodDisruptionBudgets respected), proved from pod UIDs."""

import pytest

from drift.models import AuditEvent, Cluster
from drift.rollout import Target, request_rollout
from tests.kube_helpers import deployment
from tests.test_rollout_cluster import follow, ready_app

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.usefixtures("private_celery_queue")]

KEY = "driftwatch.io/config-hash"


@pytest.fixture
def cluster(kubeconfig):
    return Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))


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
