"""`/metrics` on the real stack: the seed's env-demo goes stale, the gauge says so with the workload's labels and
the number of pods, and drops to 0 after the rollout; parsed with prometheus_client's own parser."""

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from dashboard.metrics import GAUGE_NAMES, PROCESS_NAMES
from drift.models import Cluster, Rollout
from drift.rollout import follow_rollouts
from tests.kube_helpers import wait_until
from tests.test_snapshot_seed import cluster, seed_manifests, snapshot  # noqa: F401 (fixture)

# Transactional: counters are incremented when what they count is committed.
pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def scrape(client: Client, **headers: str) -> dict[str, list]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    return {family.name: family.samples for family in text_string_to_metric_families(response.content.decode())}


def value(families: dict, name: str, **labels: str) -> float | None:
    for sample in (sample for samples in families.values() for sample in samples):
        if sample.name == name and all(sample.labels.get(key) == wanted for key, wanted in labels.items()):
            return sample.value
    return None


@pytest.fixture
def env_demo(kube):
    for manifest in seed_manifests("10-env-demo.yaml"):
        if manifest["kind"] == "ConfigMap":
            kube.config_map(manifest["metadata"]["name"], manifest["data"])
        else:
            kube.create_deployment(manifest)
    kube.wait_deployment_ready("env-demo")
    for pod in kube.ready_pods("env-demo"):
        kube.wait_exec_ready(pod.metadata.name)
    return kube


def test_stale_gauge_follows_a_stale_episode_and_the_rollout(cluster, env_demo):  # noqa: F811
    client = Client()
    namespace = env_demo.namespace
    workload = {"cluster": "local", "namespace": namespace, "workload_kind": "Deployment", "workload": "env-demo"}
    snapshot()
    families = scrape(client)
    assert value(families, "driftwatch_stale_pods", mode="envFrom", **workload) == 0
    assert value(families, "driftwatch_build_info") == 1
    assert value(families, "driftwatch_snapshot_last_success_timestamp_seconds", cluster="local") > 0

    env_demo.edit_config_map("env-config", {"log_level": "DEBUG"})
    snapshot()
    families = scrape(client)
    replicas = len(env_demo.ready_pods("env-demo"))
    assert replicas == 2
    assert value(families, "driftwatch_stale_pods", mode="envFrom", **workload) == replicas
    assert value(families, "driftwatch_stale_since_seconds", **workload) >= 0
    assert value(families, "driftwatch_pods", cluster="local", verdict="stale") >= replicas
    assert value(families, "driftwatch_config_changes_total", cluster="local", namespace=namespace, kind="ConfigMap")

    call_command("rollout", "deployment/env-demo", "-n", namespace, "--cluster", "local", "--actor", "metrics-test")
    wait_until(lambda: len(env_demo.replica_sets("env-demo")) == 2, what="env-demo rolled")
    env_demo.wait_deployment_ready("env-demo")
    wait_until(lambda: len(env_demo.pods("env-demo")) == len(env_demo.ready_pods("env-demo")), what="settled")
    for pod in env_demo.ready_pods("env-demo"):
        env_demo.wait_exec_ready(pod.metadata.name)
    wait_until(lambda: follow_rollouts() and Rollout.objects.filter(status="complete").exists(), what="followed")
    snapshot()
    families = scrape(client)
    assert value(families, "driftwatch_stale_pods", mode="envFrom", **workload) == 0
    assert value(families, "driftwatch_stale_since_seconds", **workload) is None
    assert value(families, "driftwatch_rollouts_total", cluster="local", result="complete") >= 1


def test_per_workload_labels_can_be_switched_off(cluster, env_demo):  # noqa: F811
    env_demo.edit_config_map("env-config", {"log_level": "DEBUG"})
    snapshot()
    Cluster.objects.filter(pk=cluster.pk).update(metrics_per_workload=False)
    families = scrape(Client())
    namespace = env_demo.namespace
    assert value(families, "driftwatch_stale_pods", workload="env-demo") is None
    labels = {"cluster": "local", "namespace": namespace, "workload_kind": "", "workload": "", "mode": "envFrom"}
    assert value(families, "driftwatch_stale_pods", **labels) == 2


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer wrong-token", 401), ("Basic c2NyYXBlLXRva2Vu", 401), ("Bearer scrape-token", 200)],
)
def test_a_token_closes_the_endpoint_to_everyone_else(authorization: str | None, status: int) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with override_settings(DRIFTWATCH_METRICS_TOKEN="scrape-token"):
        response = Client().get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert b"driftwatch_" not in response.content


def test_every_exported_name_is_listed():
    families = scrape(Client())
    exported = set(GAUGE_NAMES) | set(PROCESS_NAMES)
    assert {name.removesuffix("_total") for name in exported} >= set(families) - {""}


def test_counters_of_a_worker_process_reach_the_scrape(cluster, tmp_path, monkeypatch, request):  # noqa: F811
    """With PROMETHEUS_MULTIPROC_DIR, the histogram a Celery worker process observes while snapshotting is in
    the web process's answer (added up from the folder's files)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    request.getfixturevalue("celery_worker_process")  # started with the folder in its environment
    from drift.tasks import snapshot_cluster

    snapshot_cluster.delay(cluster.pk)
    wait_until(lambda: cluster.runs.exclude(status="running").exists(), timeout=120, what="the worker's snapshot")
    wait_until(lambda: list(tmp_path.iterdir()), what="the worker's metric files")
    families = scrape(Client())
    assert value(families, "driftwatch_snapshot_duration_seconds_count", cluster="local") == 1
    assert value(families, "driftwatch_build_info") == 1


@pytest.mark.django_db
def test_the_watchers_last_heartbeat_is_exported_per_cluster() -> None:
    from datetime import UTC, datetime

    heard = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    Cluster.objects.create(name="watched", kubeconfig_path="/nonexistent", watch_heartbeat_at=heard)
    Cluster.objects.create(name="unwatched", kubeconfig_path="/nonexistent")
    families = scrape(Client())
    name = "driftwatch_watcher_last_heartbeat_timestamp_seconds"
    assert value(families, name, cluster="watched") == heard.timestamp()
    assert value(families, name, cluster="unwatched") == 0  # never heard of: the watcher-down rule fires


@pytest.mark.django_db
def test_which_watcher_process_holds_each_cluster_is_exported() -> None:
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from drift.models import ClusterLease

    held = Cluster.objects.create(name="held", kubeconfig_path="/nonexistent")
    lapsed = Cluster.objects.create(name="lapsed", kubeconfig_path="/nonexistent")
    Cluster.objects.create(name="never", kubeconfig_path="/nonexistent")
    process = uuid.uuid4()
    now = timezone.now()
    ClusterLease.objects.create(cluster=held, holder_id=process, holder_host="node-a", holder_pid=41,
                                expires_at=now + timedelta(seconds=10))  # fmt: skip
    ClusterLease.objects.create(cluster=lapsed, holder_id=uuid.uuid4(), holder_host="node-b", holder_pid=42,
                                expires_at=now - timedelta(seconds=1))  # fmt: skip
    families = scrape(Client())
    name = "driftwatch_watcher_lease_holder"
    assert value(families, name, cluster="held", host="node-a", pid="41", process=str(process)) == 1
    assert value(families, name, cluster="lapsed", host="", pid="", process="") == 0
    assert value(families, name, cluster="never", host="", pid="", process="") == 0


@pytest.mark.django_db
def test_the_database_families_are_written_as_the_client_library_writes_them() -> None:
    """dashboard.metrics.text_format (the fast path of a large scrape) against prometheus_client's own writer,
    on labels that need escaping."""
    import uuid
    from datetime import timedelta

    from django.utils import timezone
    from prometheus_client import CollectorRegistry, generate_latest

    from dashboard.metrics import DatabaseCollector, text_format
    from drift.models import AuditWebhookRejection, ClusterLease

    odd = Cluster.objects.create(name="odd", kubeconfig_path="/nonexistent", watch_heartbeat_at=timezone.now())
    ClusterLease.objects.create(cluster=odd, holder_id=uuid.uuid4(), holder_host='node "a"\\b\nc', holder_pid=7,
                                expires_at=timezone.now() + timedelta(seconds=30))  # fmt: skip
    AuditWebhookRejection.objects.create(cluster_name="odd", reason="event time", status_code=200, count=3)
    now = timezone.now()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(now))
    assert text_format(DatabaseCollector(now).collect()) == generate_latest(registry)
