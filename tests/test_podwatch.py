"""Watch what is judged: pods are watched like ConfigMaps and Secrets, so a pod started, replaced or deleted
has its row, its probe and its stored verdict within seconds and without a snapshot cycle; and a cluster that
does nothing costs nothing but heartbeats: no row, and no request to its API server for minutes (each watch lasts
5-10 minutes; the heartbeat keeps a clock of its own)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.apps import apps
from django.utils import timezone

from drift import verdicts
from drift.clusters import cluster_traffic, register_cluster
from drift.models import Channel, Cluster, Notice, NotificationRule, Observation, Pod, SnapshotRun, StoredVerdict
from drift.snapshot.watch import ResourceWatch, cluster_watches
from tests.kube_helpers import wait_until
from tests.receiver import receiver
from tests.test_snapshot_seed import seed_manifests

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(kubeconfig, namespace):
    """The local cluster, read in namespaced mode: only the test's namespace (the shared cluster may hold
    thousands of other pods, whose first recording would make every test slow)."""
    registered, _ = register_cluster("local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])
    return registered


@contextmanager
def watching_everything(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """Every watch `manage.py watch` starts for the cluster, each in its own thread."""
    stop = threading.Event()
    watches = cluster_watches(cluster.pk, stop)
    threads = [threading.Thread(target=watch.run, daemon=True) for watch in watches.values()]
    for thread in threads:
        thread.start()
    try:
        yield watches
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def api_watches(watches: dict[str, Any]) -> list[Any]:
    """The watches of the API (the probe planner and the heartbeat, beside them, open none)."""
    return [watch for watch in watches.values() if isinstance(watch, ResourceWatch)]


def started(watches: dict[str, Any]) -> bool:
    return all(watch.counts.get("watches") for watch in api_watches(watches))


def env_demo_summary(cluster: Cluster, namespace: str) -> verdicts.WorkloadSummary | None:
    found = [s for s in verdicts.workload_summaries(cluster, namespace=namespace) if s.name == "env-demo"]
    return found[0] if found else None


def fresh_pods(cluster: Cluster, namespace: str) -> int:
    summary = env_demo_summary(cluster, namespace)
    return summary.pods["fresh"] if summary else 0


def live_pods(cluster: Cluster, namespace: str) -> int:
    summary = env_demo_summary(cluster, namespace)
    return sum(summary.pods.values()) if summary else 0


def judged(namespace: str) -> str:
    """What is stored of the namespace's pods, for a failure's message."""
    stored = StoredVerdict.objects.filter(pod__namespace=namespace).values_list("pod__name", "verdict", "reason")
    observed = Observation.objects.filter(consumption__container__pod__namespace=namespace).values_list(
        "consumption__container__pod__name", "ok", "reason"
    )
    return f"2 fresh pods; stored {list(stored)}; observed {list(observed)}"


def create_env_demo(kube: Any) -> None:
    for manifest in seed_manifests("10-env-demo.yaml"):
        if manifest["kind"] == "ConfigMap":
            kube.config_map(manifest["metadata"]["name"], manifest["data"])
        else:
            kube.create_deployment(manifest)


def test_a_pod_started_or_replaced_gets_its_row_probe_and_verdict_without_a_cycle(cluster, kube, namespace):
    with watching_everything(cluster) as watches:
        wait_until(lambda: started(watches), timeout=120, what="every watch open")
        create_env_demo(kube)
        kube.wait_deployment_ready("env-demo")
        # The env probe needs the pods' exec environment; fresh means probed (env is only known by reading it).
        wait_until(lambda: fresh_pods(cluster, namespace) == 2, timeout=60, interval=0.2, what=judged(namespace))
        [replaced, kept] = sorted(kube.ready_pods("env-demo"), key=lambda pod: pod.metadata.name)
        kube.core.delete_namespaced_pod(replaced.metadata.name, namespace, grace_period_seconds=0)
        wait_until(
            lambda: Pod.objects.filter(uid=replaced.metadata.uid).exclude(deleted_at=None).exists(),
            timeout=30, interval=0.2, what="the deleted pod ended",
        )  # fmt: skip
        # The deleted pod leaves the counts at once: never three pods, whatever the replacement's state.
        assert live_pods(cluster, namespace) <= 2
        wait_until(lambda: len(kube.ready_pods("env-demo")) == 2, timeout=60, what="the replacement ready")
        [replacement] = [pod for pod in kube.ready_pods("env-demo") if pod.metadata.uid != kept.metadata.uid]
        kube.wait_exec_ready(replacement.metadata.name)
        wait_until(
            lambda: StoredVerdict.objects.filter(pod__uid=replacement.metadata.uid, verdict="fresh").exists(),
            timeout=30, interval=0.2, what="the replacement's verdict",
        )  # fmt: skip
        assert fresh_pods(cluster, namespace) == 2 and live_pods(cluster, namespace) == 2
    assert not SnapshotRun.objects.filter(cluster=cluster).exists()  # no cycle did any of it


def test_a_pod_being_deleted_is_recorded_as_terminating(cluster, kube, namespace):
    create_env_demo(kube)
    kube.wait_deployment_ready("env-demo")
    with watching_everything(cluster) as watches:
        wait_until(lambda: started(watches), timeout=120, what="every watch open")
        [pod, *_] = kube.ready_pods("env-demo")
        wait_until(lambda: Pod.objects.filter(uid=pod.metadata.uid).exists(), timeout=30, what="the pod recorded")
        # A finalizer holds the pod in Terminating (deletionTimestamp set, still listed).
        kube.core.patch_namespaced_pod(pod.metadata.name, namespace, {"metadata": {"finalizers": ["test/hold"]}})
        kube.core.delete_namespaced_pod(pod.metadata.name, namespace)
        try:
            wait_until(
                lambda: Pod.objects.filter(uid=pod.metadata.uid).exclude(terminating_since=None).exists(),
                timeout=30, interval=0.2, what="the pod recorded as terminating",
            )  # fmt: skip
        finally:
            kube.core.patch_namespaced_pod(pod.metadata.name, namespace, {"metadata": {"finalizers": None}})
        wait_until(
            lambda: Pod.objects.filter(uid=pod.metadata.uid).exclude(deleted_at=None).exists(),
            timeout=30, interval=0.2, what="the pod ended once gone",
        )  # fmt: skip


def probed(namespace: str) -> int:
    return Observation.objects.filter(consumption__container__pod__namespace=namespace).count()


def row_counts() -> dict[str, int]:
    """Rows of every Driftwatch table."""
    return {model._meta.db_table: model.objects.count() for model in apps.get_app_config("drift").get_models()}


def settled(cluster: Cluster, kube: Any, namespace: str) -> None:
    """env-demo's two pods recorded, judged and probed, and what the first events brought written."""
    wait_until(lambda: fresh_pods(cluster, namespace) == 2, timeout=60, interval=0.2, what="2 fresh pods")
    wait_until(lambda: probed(namespace) == 2, timeout=60, interval=0.2, what="both pods' env read")
    time.sleep(5)


def test_an_idle_minute_inserts_nothing_but_heartbeats(cluster, kube, namespace):
    create_env_demo(kube)
    kube.wait_deployment_ready("env-demo")
    for pod in kube.ready_pods("env-demo"):
        kube.wait_exec_ready(pod.metadata.name)
    with watching_everything(cluster) as watches:
        wait_until(lambda: started(watches), timeout=120, what="every watch open")
        settled(cluster, kube, namespace)
        before, heartbeat = row_counts(), Cluster.objects.get(pk=cluster.pk).watch_heartbeat_at
        moment = timezone.now()
        time.sleep(65)
        after = row_counts()
    assert after == before, {table: (before[table], after[table]) for table in before if before[table] != after[table]}
    assert Cluster.objects.get(pk=cluster.pk).watch_heartbeat_at > max(heartbeat, moment)
    assert all(watch.counts.get("relists", 0) == 1 for watch in api_watches(watches))


def test_an_idle_cluster_is_asked_nothing_for_70_seconds_while_the_heartbeat_moves(cluster, kube, namespace):
    # Before, each watch ended after 60 s and the heartbeat rode on its reopening: three requests a minute for a
    # cluster where nothing happens (and one per namespace and kind in namespaced mode).
    create_env_demo(kube)
    kube.wait_deployment_ready("env-demo")
    for pod in kube.ready_pods("env-demo"):
        kube.wait_exec_ready(pod.metadata.name)
    traffic = cluster_traffic(cluster)
    with watching_everything(cluster) as watches:
        wait_until(lambda: started(watches), timeout=120, what="every watch open")
        settled(cluster, kube, namespace)
        requests, beats = traffic.requests, []
        for _ in range(7):
            time.sleep(10)
            beats.append(Cluster.objects.get(pk=cluster.pk).watch_heartbeat_at)
        asked = traffic.requests - requests
        opened = {watch.label: watch.counts.get("watches", 0) for watch in api_watches(watches)}
    assert asked == 0, f"{asked} requests in an idle 70 s; watches opened: {opened}"
    assert all(count == 1 for count in opened.values()), opened  # each opened once, none reopened
    # The heartbeat moves on its own clock (every 10 s), not only when a watch reopens.
    assert len(set(beats)) >= 5, beats


def test_a_config_map_edit_is_notified_within_seconds_by_the_watcher_without_a_snapshot(
    cluster, kube, namespace, celery_worker_process, plain_http
):
    # Before, the rules were judged only after a snapshot: every reconcile interval (10 min) while the watcher
    # lives. Now the watcher asks for them once it stored verdicts that changed (at most every snapshot interval).
    Cluster.objects.filter(pk=cluster.pk).update(snapshot_interval_seconds=5)
    create_env_demo(kube)
    kube.wait_deployment_ready("env-demo")
    for pod in kube.ready_pods("env-demo"):
        kube.wait_exec_ready(pod.metadata.name)
    with receiver() as hook, watching_everything(cluster) as watches:
        channel = Channel.objects.create(name="team", kind="json", url=hook.url, signing_key="k" * 32)
        NotificationRule.objects.create(name="stale-now", channel=channel, for_minutes=0, namespace=namespace)
        wait_until(lambda: started(watches), timeout=120, what="every watch open")
        settled(cluster, kube, namespace)
        time.sleep(5)  # past the snapshot interval since the verdicts the first lists stored
        assert not hook.requests and not Notice.objects.exists()
        kube.edit_config_map("env-config", {"log_level": "DEBUG"})
        edited = time.time()
        [notice] = hook.wait_for(1, timeout=60)
    assert not SnapshotRun.objects.filter(cluster=cluster).exists()
    payload = json.loads(notice.body)
    assert payload["workload"] == {"kind": "Deployment", "name": "env-demo"} and payload["stale_pods"] == 2
    print(f"notified {notice.at - edited:.1f} s after the edit")
    assert notice.at - edited <= 15, f"notified {notice.at - edited:.1f} s after the edit"
