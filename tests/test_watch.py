"""The watcher against the real API server: every version within seconds, in order, with its client; a connection
cut (an API server going away and coming back) and a stalled watch are survived, and what changed meanwhile is
caught up."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from drift.clusters import register_cluster
from drift.models import AuditEvent, Cluster, Source, SourceVersion
from drift.snapshot.watch import SourceWatch
from drift.vocabulary import SourceKind
from tests.faultproxy import FaultProxy, cached_kubectl
from tests.kube_helpers import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def kubectl(kubeconfig: Path, *args: str) -> None:
    subprocess.run([cached_kubectl(), "--kubeconfig", str(kubeconfig), *args], check=True, capture_output=True)


@contextmanager
def watching(cluster: Cluster, kind: SourceKind = SourceKind.CONFIG_MAP, **options: object) -> Iterator[SourceWatch]:
    stop = threading.Event()
    options.setdefault("stall_seconds", 5)  # so that the thread notices `stop` soon after the test
    watcher = SourceWatch(cluster.pk, kind, stop, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        stop.set()
        thread.join(timeout=30)


def versions(namespace: str, name: str) -> list[SourceVersion]:
    return list(
        SourceVersion.objects.filter(source__namespace=namespace, source__name=name).order_by("first_seen", "id")
    )


def forgotten(kubeconfig: Path, resource_version: str) -> bool:
    """Whether the API server answers a watch of ConfigMaps from this resourceVersion with a 410."""
    path = f"/api/v1/configmaps?watch=1&resourceVersion={resource_version}&timeoutSeconds=1"
    result = subprocess.run(
        [cached_kubectl(), "--kubeconfig", str(kubeconfig), "get", "--raw", path], capture_output=True, text=True
    )
    return '"code":410' in result.stdout


def churn(kubeconfig: Path, namespace: str, count: int = 100) -> bool:
    """Writes `count` ConfigMap events at once (new contents each time); returns False, to be called again."""
    stamp = time.monotonic_ns()
    items = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"churn-{index}"}, "data": {"at": str(stamp)}}
        for index in range(count)
    ]
    subprocess.run(
        [cached_kubectl(), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", "-"],
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}), capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return False


def log_levels(namespace: str, name: str) -> list[str]:
    return [version.data.get("log_level", "") for version in versions(namespace, name)]


def test_a_resource_version_the_api_server_forgot_is_a_410_then_a_relist_that_catches_up(kubeconfig, kube, namespace):
    # The API server's watch cache keeps a window of recent events (at least 75 s of them, growing before it
    # drops fresher ones). Once resourceVersion 1 has left it, a watch from it is answered with an ERROR event
    # of code 410 (Expired), as on any long-running cluster; churn makes that happen on a fresh one too.
    wait_until(lambda: forgotten(kubeconfig, "1") or churn(kubeconfig, namespace), timeout=240, interval=1,
               what="the API server to forget resourceVersion 1")  # fmt: skip
    cluster, _ = register_cluster("local", str(kubeconfig))
    kube.config_map("written-while-away", {"log_level": "INFO"})
    with watching(cluster, resume_from="1") as watcher:
        wait_until(lambda: watcher.counts.get("gone"), timeout=60, what="the 410")
        wait_until(lambda: log_levels(namespace, "written-while-away") == ["INFO"], timeout=30, what="the relist")
        wait_until(lambda: watcher.counts.get("watches", 0) >= 2, timeout=30, what="the watch after the relist")
        kubectl(kubeconfig, "-n", namespace, "patch", "configmap", "written-while-away", "--type", "merge",
                "-p", '{"data":{"log_level":"DEBUG"}}')  # fmt: skip
        wait_until(lambda: log_levels(namespace, "written-while-away") == ["INFO", "DEBUG"], timeout=30)
    assert watcher.counts["gone"] == 1 and watcher.counts["relists"] == 1


def test_a_resume_point_from_before_the_cluster_was_rebuilt_is_dropped_for_a_relist(kubeconfig, kube, namespace):
    # A resume point the API server has not reached (the cluster was rebuilt, or etcd restored from a backup): a
    # watch from it answers nothing at all, not even a bookmark, until etcd gets there. The demo met it: its
    # watcher resumed from the previous cluster's position and saw no edit. A stall with nothing heard relists.
    cluster, _ = register_cluster("local", str(kubeconfig))
    kube.config_map("written-while-away", {"log_level": "INFO"})
    with watching(cluster, resume_from="999999999", stall_seconds=3) as watcher:
        wait_until(lambda: log_levels(namespace, "written-while-away") == ["INFO"], timeout=30, what="the relist")
        kubectl(kubeconfig, "-n", namespace, "patch", "configmap", "written-while-away", "--type", "merge",
                "-p", '{"data":{"log_level":"DEBUG"}}')  # fmt: skip
        wait_until(lambda: log_levels(namespace, "written-while-away") == ["INFO", "DEBUG"], timeout=30)
    assert watcher.counts["stalled"] >= 1 and watcher.counts["relists"] >= 1


def test_two_edits_a_second_apart_are_two_versions_in_order_with_their_client(kubeconfig, kube, namespace):
    cluster, _ = register_cluster("local", str(kubeconfig))
    with watching(cluster) as watcher:
        wait_until(lambda: watcher.counts.get("watches"), timeout=60, what="the watch")
        kube.config_map("app", {"log_level": "INFO"})
        wait_until(lambda: log_levels(namespace, "app") == ["INFO"], timeout=30, what="the first version")
        delays = []
        for level in ("DEBUG", "WARN"):
            kubectl(kubeconfig, "-n", namespace, "patch", "configmap", "app", "--type", "merge",
                    "-p", f'{{"data":{{"log_level":"{level}"}}}}')  # fmt: skip
            returned = time.monotonic()
            wait_until(lambda lvl=level: log_levels(namespace, "app")[-1:] == [lvl], timeout=30, interval=0.05)
            delays.append(time.monotonic() - returned)
            time.sleep(1)
        # A label is metadata, not content: no version.
        kubectl(kubeconfig, "-n", namespace, "label", "configmap", "app", "team=a")
        time.sleep(2)
    found = versions(namespace, "app")
    assert [v.data["log_level"] for v in found] == ["INFO", "DEBUG", "WARN"]
    assert [v.recorded_by for v in found] == ["watch"] * 3
    assert [v.client for v in found[1:]] == ["kubectl-patch", "kubectl-patch"]
    assert all(v.changed_by == "" for v in found)  # no audit events joined: a client, never a person
    assert int(found[1].resource_version) < int(found[2].resource_version)
    changes = AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_CHANGED, object_name="app")
    assert changes.count() == 2
    assert "by client kubectl-patch" in changes.first().message
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "watch-delays.txt").open("a") as out:
        out.write(" ".join(f"{delay:.3f}" for delay in delays) + "\n")


def test_the_watcher_survives_its_connection_cut_and_a_stalled_watch(kubeconfig, kube, namespace, tmp_path):
    proxy = FaultProxy(kubeconfig, tmp_path).start()
    try:
        cluster, _ = register_cluster("local", str(proxy.kubeconfig_path()))
        kube.config_map("app", {"log_level": "INFO"})
        with watching(cluster, stall_seconds=5) as watcher:
            wait_until(lambda: log_levels(namespace, "app") == ["INFO"], timeout=60, what="the first version")
            # The API server goes away: connections cut, new ones refused, while the ConfigMap changes twice.
            proxy.go_away()
            proxy.drop_connections()
            kube.edit_config_map("app", {"log_level": "DEBUG"})
            wait_until(lambda: watcher.counts.get("errors"), timeout=30, what="the watcher to notice")
            kube.edit_config_map("app", {"log_level": "WARN"})
            proxy.come_back()
            wait_until(lambda: log_levels(namespace, "app")[-1:] == ["WARN"], timeout=60, what="caught up")
            # A watch that hangs without closing is restarted after the stall limit.
            proxy.stall_watch = True
            proxy.drop_connections()
            wait_until(lambda: watcher.counts.get("stalled"), timeout=60, what="the stall to be noticed")
            kube.edit_config_map("app", {"log_level": "ERROR"})
            proxy.stall_watch = False
            proxy.drop_connections()
            wait_until(lambda: log_levels(namespace, "app")[-1:] == ["ERROR"], timeout=60, what="caught up again")
        # Resumed from the last resourceVersion: the change made while it was down is its own version only
        # if it was seen; what the watch resumes with is the latest content, never an older one after a newer.
        levels = log_levels(namespace, "app")
        assert levels[0] == "INFO" and levels[-1] == "ERROR"
        assert levels.index("WARN") < levels.index("ERROR")
        assert Source.objects.filter(namespace=namespace, name="app", deleted_at=None).count() == 1
    finally:
        proxy.stop()
