"""Point in time on the real control plane: a Deployment reading a ConfigMap through envFrom, an edit, a
rollout by Driftwatch. Asked at three moments (before the edit, after it, after the rollout), it names the pods
that ran then by UID, the version each ran and the verdict then: the first pods fresh on #1, then stale on #1
with #2 current, then only the new pods, fresh on #2."""

import time

import pytest
from django.utils import timezone

from drift.models import Cluster
from drift.rollout import Target, request_rollout
from drift.snapshot import snapshot
from drift.verdicts.read_at import point_in_time
from tests.kube_helpers import deployment, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.usefixtures("private_celery_queue")]


def by_uid(answer):
    return {row.pod_uid: row for row in answer.rows if row.row.source.name == "env-config"}


def test_three_moments_around_an_edit_and_a_rollout(kubeconfig, kube, namespace):
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container], replicas=2))
    kube.wait_deployment_ready("env-demo")
    first_pods = {pod.metadata.uid for pod in kube.pods("env-demo")}
    assert snapshot(cluster).status == "succeeded"
    # Pod start times are whole seconds, and point in time calls a pod started in T's own second "not known" (it
    # may have started after T): on a quiet machine the snapshot ends within the pods' second.
    time.sleep(1.1)
    before_edit = timezone.now()

    time.sleep(1.1)  # managedFields times are whole seconds: the edit lands in a later second than before_edit
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    time.sleep(1.1)
    after_edit = timezone.now()
    assert snapshot(cluster).status == "succeeded"

    time.sleep(1.1)  # pod start times are whole seconds too: the new pods start in a later second than after_edit
    rollout, plan = request_rollout(cluster, Target("Deployment", namespace, "env-demo"), "alice")
    assert rollout.status in ("in_progress", "complete"), plan.message

    def replaced():
        uids = {pod.metadata.uid for pod in kube.ready_pods("env-demo")}
        everyone = {pod.metadata.uid for pod in kube.pods("env-demo")}
        return uids if len(uids) == 2 and not uids & first_pods and everyone == uids else None

    second_pods = wait_until(replaced, timeout=120, what="the rollout to replace both pods")
    assert snapshot(cluster).status == "succeeded"
    after_rollout = timezone.now()

    at_first = by_uid(point_in_time(cluster, before_edit))
    at_edit = by_uid(point_in_time(cluster, after_edit))
    at_end = by_uid(point_in_time(cluster, after_rollout))

    assert set(at_first) == first_pods
    assert {(row.running.number, row.current.number, row.row.verdict) for row in at_first.values()} == {(1, 1, "fresh")}
    assert set(at_edit) == first_pods
    assert {(row.running.number, row.current.number, row.row.verdict) for row in at_edit.values()} == {(1, 2, "stale")}
    assert set(at_end) == second_pods
    assert {(row.running.number, row.current.number, row.row.verdict) for row in at_end.values()} == {(2, 2, "fresh")}
