"""What a pod says of reloading, recorded by a real snapshot of the local cluster: the driftwatch.io/reload
annotation of the pod template, a config-reloader sidecar beside the app, and a restart tool named on the
Deployment itself (which reaches the snapshot through the ReplicaSets the Deployment controller copies it to);
the overview then carries the tool's badge."""

import re

import pytest
from django.urls import reverse

from drift.clusters import register_cluster
from drift.models import ContainerInstance, SnapshotRun
from drift.snapshot import snapshot
from tests.facts import user
from tests.kube_helpers import deployment, wait_until
from tests.test_real_node import kubectl

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


def hints(namespace: str, workload: str) -> dict[str, dict[str, str]]:
    return dict(
        ContainerInstance.objects.filter(
            pod__namespace=namespace, pod__workload__name=workload, ended_at=None
        ).values_list("name", "reload_hints")
    )


def test_a_snapshot_records_what_pods_and_their_owners_say_of_reloading(kube, kubeconfig, client, plain_http):
    kube.config_map("web-config", {"app.conf": "a"})
    mount = {"name": "c", "mountPath": "/etc/web"}
    volumes = [{"name": "c", "configMap": {"name": "web-config"}}]

    tooled = deployment("tooled", [{"name": "app", "image": "nginx:1.27", "volumeMounts": [mount]}], volumes)
    tooled["metadata"]["annotations"] = {"reloader.stakater.com/auto": "true"}
    tooled["spec"]["template"]["metadata"]["annotations"] = {"driftwatch.io/reload.app": "restart"}
    kube.create_deployment(tooled)

    sidecar = deployment(
        "sidecar",
        [
            {"name": "app", "image": "nginx:1.27", "volumeMounts": [mount]},
            {"name": "reload", "image": "ghcr.io/jimmidyson/configmap-reload:v0.14.0", "volumeMounts": [mount]},
        ],
        volumes,
    )
    kube.create_deployment(sidecar)
    for name in ("tooled", "sidecar"):
        kube.wait_deployment_ready(name)

    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    run = snapshot(cluster)
    assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
    assert hints(kube.namespace, "tooled") == {
        "app": {
            "declared": "restart",
            "declared_by": "annotation driftwatch.io/reload.app",
            "restart_tool": "Reloader (reloader.stakater.com/auto)",
        }
    }
    assert hints(kube.namespace, "sidecar") == {"app": {"sidecar": "configmap-reload, container reload"}, "reload": {}}

    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("overview"), {"verdict": "fresh", "namespace": kube.namespace}).content.decode()
    assert re.search(r'tooled</a>\s*<span class="badge restart-tool"[^>]*>Reloader</span>', content)
    assert not re.search(r'sidecar</a>\s*<span class="badge restart-tool"', content)


def test_kubectl_rollout_restart_is_read_as_a_rollout_in_the_history(kube, kubeconfig, client, plain_http):
    kube.create_deployment(deployment("web", [{"name": "app", "image": "nginx:1.27"}]))
    kube.wait_deployment_ready("web")
    result = kubectl("-n", kube.namespace, "rollout", "restart", "deployment/web")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: len(kube.replica_sets("web")) == 2, what="kubectl's restart to make a new ReplicaSet")
    kube.wait_deployment_ready("web")
    template = kube.apps.read_namespaced_deployment("web", kube.namespace).spec.template.metadata.annotations
    restarted = template["kubectl.kubernetes.io/restartedAt"]

    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    client.force_login(user("vera", "viewer"))
    content = client.get(reverse("workload", args=["local", kube.namespace, "Deployment", "web"])).content.decode()
    # When, relative, with the absolute time (and its zone) on hover.
    shown = re.search(r'<code>kubectl rollout restart</code> <time datetime="[^"]+" title="(\S+ \S+) UTC">', content)
    assert shown, "the restart is in the rollout history"
    assert shown.group(1) == restarted.replace("T", " ").removesuffix("Z")
