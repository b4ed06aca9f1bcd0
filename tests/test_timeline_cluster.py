"""The timeline on the real stack: a script of an incident's steps on the local control plane (a ConfigMap edit
with kubectl, a Driftwatch rollout, a `kubectl rollout restart`) recorded by snapshots, and the verdict change the
edit caused: the timeline lists each step once, in order, with who did it."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils import timezone

from drift.clusters import register_cluster
from drift.models import Pod, SnapshotRun
from drift.rollout import Target, refresh_rollout, request_rollout
from drift.snapshot import snapshot
from tests.facts import user
from tests.kube_helpers import deployment, wait_until
from tests.test_real_node import kubectl

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.django_db,
    pytest.mark.usefixtures("private_celery_queue", "plain_http"),
]


def settled(kube, name: str) -> None:
    """The Deployment's rollout done: every pod of the newest template ready, the old ones gone."""
    result = kubectl("-n", kube.namespace, "rollout", "status", f"deployment/{name}", "--timeout=120s", timeout=150)
    assert result.returncode == 0, result.stderr
    wait_until(lambda: len(kube.pods(name)) == 1, timeout=60, what="the old pod gone")


def recorded(cluster) -> None:
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED


def test_the_timeline_lists_an_edit_its_verdict_change_a_rollout_and_a_restart_once_in_order(
    kube, kubeconfig, namespace, client
):
    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig), namespaces=[namespace], actor="admin")
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container]))
    kube.wait_deployment_ready("env-demo")
    recorded(cluster)
    # The window begins on a whole second after the first snapshot: the API server's times (a pod's startTime)
    # are whole seconds, so a pod started in the window's first second would otherwise fall before it.
    time.sleep(1.1)
    start = timezone.now().replace(microsecond=0)

    edit = kubectl("-n", namespace, "patch", "configmap", "env-config", "--type=merge", "-p",
                   '{"data":{"log_level":"DEBUG"}}')  # fmt: skip
    assert edit.returncode == 0, edit.stderr
    recorded(cluster)  # the new version; the running pod goes stale
    rollout, _ = request_rollout(cluster, Target("Deployment", namespace, "env-demo"), "bob")
    assert rollout.status == "in_progress", rollout.message
    wait_until(lambda: refresh_rollout(rollout).finished, timeout=120, what="the rollout's end")
    settled(kube, "env-demo")
    recorded(cluster)
    restart = kubectl("-n", namespace, "rollout", "restart", "deployment/env-demo")
    assert restart.returncode == 0, restart.stderr
    settled(kube, "env-demo")
    recorded(cluster)
    assert Pod.objects.filter(namespace=namespace).exclude(restarted_at=None).exists()

    client.force_login(user("viewer", "viewer"))
    since = quote(timezone.localtime(start).isoformat())
    base = f"{reverse('timeline', args=['local', namespace])}?from={since}&format=json"
    steps = json.loads(client.get(f"{base}&kind=version&kind=rollout&kind=restart").content)["entries"]
    assert [step["kind"] for step in steps] == ["version", "rollout", "restart"], steps
    version, driftwatch_rollout, kubectl_restart = steps
    assert version["summary"].startswith("ConfigMap env-config #2 changed by kubectl-patch"), version
    assert version["detail"]["changed"] == ["log_level"] and version["actor"] == "kubectl-patch"
    assert driftwatch_rollout["actor"] == "bob" and driftwatch_rollout["detail"]["status"] == "complete"
    assert kubectl_restart["workload"] == {"kind": "Deployment", "name": "env-demo"}

    everything = json.loads(client.get(base).content)["entries"]
    stale = [entry for entry in everything if entry["kind"] == "verdict" and entry["detail"]["to"] == "stale"]
    assert len(stale) == 1 and stale[0]["source"]["name"] == "env-config", everything
    moments = {entry["key"]: entry["at"] for entry in everything}
    order = [moments[key] for key in (steps[0]["key"], stale[0]["key"], steps[1]["key"], steps[2]["key"])]
    assert order == sorted(order), everything
    assert [entry["at"] for entry in everything] == sorted(entry["at"] for entry in everything)
    # The restart's and the rollout's pods: each started once and each replaced pod ended once.
    starts = [entry["pod"]["uid"] for entry in everything if entry["kind"] == "pod-start"]
    assert len(starts) == len(set(starts)) == 2, [(e["at"], e["kind"], e["summary"]) for e in everything]
