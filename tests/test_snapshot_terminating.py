"""A pod being deleted (metadata.deletionTimestamp set, running on for its grace period, as a rollout's old
pods do) is recorded as terminating and leaves the verdicts and their counts at once: two replicas are never
counted as four pods, "split", after a rollout. On the real cluster: a finalizer keeps the deleted pod there."""

import pytest

from drift.clusters import register_cluster
from drift.models import Pod, SnapshotRun
from drift.snapshot import snapshot
from drift.verdicts import rows, workload_summaries
from tests.kube_helpers import deployment, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

HOLD = "driftwatch.test/hold"


def test_a_pod_being_deleted_is_terminating_and_out_of_the_counts(kube, kubeconfig):
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("two", [container], replicas=2))
    kube.wait_deployment_ready("two")
    cluster, _ = register_cluster("local", str(kubeconfig), actor="admin")
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED

    held = kube.pods("two")[0].metadata.name
    kube.core.patch_namespaced_pod(held, kube.namespace, {"metadata": {"finalizers": [HOLD]}})
    try:
        kube.core.delete_namespaced_pod(held, kube.namespace)
        kube.wait_deployment_ready("two")  # its replacement runs; the held pod stays, being deleted
        wait_until(lambda: len(kube.ready_pods("two")) == 2, what="a replacement pod")
        listed = kube.core.list_namespaced_pod(kube.namespace, label_selector="app=two").items
        assert len(listed) == 3

        assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
        pod = Pod.objects.get(cluster=cluster, name=held)
        assert pod.terminating_since is not None
        assert pod.deleted_at is None
        [summary] = [s for s in workload_summaries(cluster, kube.namespace) if s.name == "two"]
        assert summary.total == 2, summary.pods
        assert not summary.split
        assert held not in {row.pod for row in rows(cluster, kube.namespace)}
    finally:
        kube.core.patch_namespaced_pod(held, kube.namespace, {"metadata": {"finalizers": None}})
