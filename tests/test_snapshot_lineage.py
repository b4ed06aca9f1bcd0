"""Deletion and recreation: a deleted ConfigMap is recorded as such, a recreated one (new uid) starts a
new lineage, and both land in the audit history. Beat enqueues a cluster when its interval is due."""

import time

import pytest

from drift.clusters import register_cluster
from drift.models import AuditEvent, Cluster, SnapshotRun, Source
from drift.snapshot import snapshot
from drift.tasks import enqueue_due_snapshots
from drift.verdicts import drift_rows
from tests.kube_helpers import deployment, wait_until

pytestmark = pytest.mark.cluster


def env_rows(cluster, namespace):
    return [row for row in drift_rows(cluster, namespace=namespace) if row.source.name == "env-config"]


@pytest.mark.django_db
def test_delete_and_recreate_start_a_new_lineage(kubeconfig, kube):
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("env-demo", [container]))
    kube.wait_deployment_ready("env-demo")
    [pod] = kube.ready_pods("env-demo")
    kube.wait_exec_ready(pod.metadata.name)
    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    snapshot(cluster)
    [row] = env_rows(cluster, kube.namespace)
    assert row.verdict == "fresh"

    kube.core.delete_namespaced_config_map("env-config", kube.namespace)
    snapshot(cluster)
    [row] = env_rows(cluster, kube.namespace)
    assert row.verdict == "missing"
    assert row.optional is False
    [lineage] = Source.objects.filter(namespace=kube.namespace, name="env-config")
    assert lineage.deleted_at is not None
    assert AuditEvent.objects.filter(action="config.deleted", object_name="env-config").count() == 1

    kube.config_map("env-config", {"log_level": "DEBUG"})
    snapshot(cluster)
    lineages = Source.objects.filter(namespace=kube.namespace, name="env-config").order_by("first_seen")
    assert [source.deleted_at is None for source in lineages] == [False, True]
    assert lineages[0].uid != lineages[1].uid
    assert AuditEvent.objects.filter(action="config.created", object_name="env-config").count() == 1
    [row] = env_rows(cluster, kube.namespace)
    assert (row.verdict, row.evidence) == ("stale", "observed"), "the pod still runs the first lineage's values"


@pytest.mark.django_db(transaction=True)
def test_beat_enqueues_due_clusters_into_the_worker(kubeconfig, celery_worker_process):
    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    Cluster.objects.filter(pk=cluster.pk).update(snapshot_interval_seconds=3600)

    assert enqueue_due_snapshots() == [cluster.pk], "never snapshotted: due at once"
    wait_until(lambda: SnapshotRun.objects.filter(cluster=cluster, status="succeeded").exists(), what="a run")
    assert enqueue_due_snapshots() == [], "not due again within its interval"

    Cluster.objects.filter(pk=cluster.pk).update(snapshot_interval_seconds=1)
    time.sleep(1.1)
    assert enqueue_due_snapshots() == [cluster.pk]
    wait_until(lambda: SnapshotRun.objects.filter(cluster=cluster, status="succeeded").count() == 2, what="run 2")
