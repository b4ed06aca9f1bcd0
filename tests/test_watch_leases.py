"""Watchers that share the clusters through leases (drift.snapshot.leases): two real `manage.py watch` processes
split two clusters; one killed with SIGKILL while a ConfigMap keeps changing, the other takes its cluster over
within the lease's expiry and resumes where the dead one had recorded up to, so that every resourceVersion the
API server returned for the edits is stored; a process that stops cleanly gives its clusters back at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from drift.clusters import register_cluster
from drift.models import Cluster, ClusterLease, SourceVersion
from drift.snapshot.leases import Holder, LeaseFence, LeaseKeeper
from drift.snapshot.watch import ResourceWatch, cluster_watches
from tests.faultproxy import cached_kubectl
from tests.kube_helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


@dataclass
class Watchers:
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def by_pid(self, pid: int) -> subprocess.Popen:
        return next(process for process in self.processes if process.pid == pid)

    def tails(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs)


@contextmanager
def watch_processes(count: int, lease_seconds: float) -> Iterator[Watchers]:
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/"
        f"{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    watchers = Watchers()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        for index in range(count):
            log_path = ARTIFACTS / f"watch-leases-{uuid.uuid4().hex[:6]}-{index}.log"
            with log_path.open("wb") as log:
                command = [sys.executable, "manage.py", "watch", "--stall-seconds", "10",
                           "--lease-seconds", str(lease_seconds)]  # fmt: skip
                watchers.processes.append(
                    subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
                )
            watchers.logs.append(log_path)
        yield watchers
    finally:
        for process in watchers.processes:
            if process.poll() is None:
                process.terminate()
        for process in watchers.processes:
            process.wait(timeout=30)


def holders() -> dict[str, int | None]:
    """Cluster name -> the pid holding its lease now (None: free or expired)."""
    now = timezone.now()
    return {
        lease.cluster.name: lease.holder_pid if lease.held_at(now) else None
        for lease in ClusterLease.objects.select_related("cluster")
    }


def balanced(watchers: Watchers, clusters: list[str]) -> bool:
    held = holders()
    pids = [held.get(name) for name in clusters]
    return None not in pids and sorted(pids) == sorted(process.pid for process in watchers.processes)  # type: ignore[type-var]


class EditStream(threading.Thread):
    """Patches one ConfigMap with new content every `every` seconds; keeps the resourceVersion of each edit."""

    def __init__(self, kubeconfig: Path, namespace: str, name: str, every: float = 0.4) -> None:
        super().__init__(daemon=True)
        self.kubeconfig, self.namespace, self.name, self.every = kubeconfig, namespace, name, every
        self.edits: list[tuple[float, str]] = []  # (time.monotonic() when answered, resourceVersion)
        self.finish = threading.Event()

    @property
    def resource_versions(self) -> list[str]:
        return [resource_version for _, resource_version in self.edits]

    def run(self) -> None:
        number = 0
        while not self.finish.is_set():
            number += 1
            result = subprocess.run(
                [cached_kubectl(), "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, "patch", "configmap",
                 self.name, "--type", "merge", "-p", f'{{"data":{{"edit":"{number}"}}}}',
                 "-o", "jsonpath={.metadata.resourceVersion}"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            self.edits.append((time.monotonic(), result.stdout.strip()))
            self.finish.wait(self.every)


def stored(cluster: str, namespace: str, name: str) -> set[str]:
    return set(
        SourceVersion.objects.filter(
            source__cluster__name=cluster, source__namespace=namespace, source__name=name
        ).values_list("resource_version", flat=True)
    )


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_a_killed_watcher_is_taken_over_within_the_lease_and_no_version_is_missed(kubeconfig, kube, namespace):
    clusters = ["east", "west"]
    for name in clusters:
        register_cluster(name, str(kubeconfig))
    kube.config_map("stream", {"edit": "0"})
    with watch_processes(2, lease_seconds=15) as watchers:
        wait_until(lambda: balanced(watchers, clusters) or any(p.poll() is not None for p in watchers.processes),
                   timeout=90, what="each process to hold one cluster")  # fmt: skip
        assert balanced(watchers, clusters), watchers.tails()
        wait_until(lambda: all(stored(name, namespace, "stream") for name in clusters), timeout=60,
                   what="both clusters' first version")  # fmt: skip
        edits = EditStream(kubeconfig, namespace, "stream")
        edits.start()
        try:
            wait_until(lambda: len(edits.resource_versions) >= 5, timeout=30, what="the first edits")
            victim_pid = holders()["east"]
            assert victim_pid is not None
            survivor = next(process for process in watchers.processes if process.pid != victim_pid)
            watchers.by_pid(victim_pid).send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(lambda: holders()["east"] == survivor.pid, timeout=45, interval=0.2,
                       what="the survivor to take east over")  # fmt: skip
            taken_at = time.monotonic()
            takeover = taken_at - killed_at
            time.sleep(5)  # the stream goes on under the new holder
        finally:
            edits.finish.set()
            edits.join(timeout=30)
        returned = set(edits.resource_versions)

        def caught_up() -> bool:
            return all(returned <= stored(name, namespace, "stream") for name in clusters)

        wait_until(caught_up, timeout=60, what="every edit stored for both clusters")
        assert holders() == {"east": survivor.pid, "west": survivor.pid}
    assert takeover <= 30, f"takeover took {takeover:.1f} s"
    # Edits while nobody watched east: a relist on takeover sees only the last of them; resuming the watch where
    # the dead holder had recorded up to replays each.
    assert len([at for at, _ in edits.edits if killed_at < at < taken_at]) >= 5
    for name in clusters:
        found = SourceVersion.objects.filter(source__cluster__name=name, source__namespace=namespace)
        # One version per edit, never one recorded twice (two watchers on one cluster would race to).
        assert found.count() == len(set(found.values_list("resource_version", flat=True)))
    with (ARTIFACTS / "watch-takeover.txt").open("a") as out:
        out.write(f"{takeover:.1f}\n")


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_a_watcher_that_stops_cleanly_gives_its_clusters_back_at_once(kubeconfig, kube, namespace):
    clusters = ["east", "west"]
    for name in clusters:
        register_cluster(name, str(kubeconfig))
    with watch_processes(2, lease_seconds=60) as watchers:
        wait_until(lambda: balanced(watchers, clusters), timeout=120, what="each process to hold one cluster")
        leaving_pid = holders()["east"]
        staying = next(process for process in watchers.processes if process.pid != leaving_pid)
        leaving = watchers.by_pid(leaving_pid)  # type: ignore[arg-type]
        leaving.terminate()
        stopped_at = time.monotonic()
        assert leaving.wait(timeout=30) == 0, watchers.tails()
        # Long before the 60 s lease would expire: it was given back, and the other process's share grew.
        wait_until(lambda: holders()["east"] == staying.pid, timeout=40, interval=0.2, what="east taken up")
        assert time.monotonic() - stopped_at < 40
        assert ClusterLease.objects.get(cluster__name="east").resume_from.get("configmaps")


@pytest.mark.django_db(transaction=True)
def test_a_held_lease_is_not_taken_until_it_expires_and_its_holder_then_stops_by_itself():
    cluster = Cluster.objects.create(name="solo")
    first = LeaseKeeper(Holder("host-a", 1, uuid.uuid4()), lease_seconds=2)
    second = LeaseKeeper(Holder("host-b", 2, uuid.uuid4()), lease_seconds=2)
    assert set(first.take_round({}).gained) == {cluster.pk}
    assert second.take_round({}).gained == {}  # held, and one cluster for two processes is the first one's
    fence = first.fence(cluster.pk)
    first.take_round({cluster.pk: {"configmaps": "123"}})  # renewed, with where its watches got to
    assert not fence.is_set()
    time.sleep(2.2)  # the first process stops renewing (frozen): its own fence ends first, then the lease
    assert fence.is_set()
    gained = second.take_round({}).gained
    assert gained == {cluster.pk: {"configmaps": "123"}}
    assert first.take_round({}).lost == {cluster.pk}
    assert ClusterLease.objects.get(pk=cluster.pk).holder_host == "host-b"


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_watches_whose_lease_fence_passes_stop_within_seconds_even_on_a_quiet_cluster(kubeconfig, namespace):
    # A watch lasts minutes and waits for its next event in a blocking read: on a quiet cluster, without someone
    # ending its stream, it would notice its fence only at its next bookmark or its end. Before, a holder whose
    # fence had passed kept its watches open until then (no recording, but the rule says its watches stop).
    cluster, _ = register_cluster("quiet", str(kubeconfig), namespaces=[namespace])
    fence = LeaseFence(time.monotonic() + 3600)
    watches = cluster_watches(cluster.pk, fence)
    threads = [threading.Thread(target=watch.run, daemon=True) for watch in watches.values()]
    for thread in threads:
        thread.start()
    try:
        resource_watches = [watch for watch in watches.values() if isinstance(watch, ResourceWatch)]
        wait_until(lambda: all(watch.counts.get("watches") for watch in resource_watches), timeout=60,
                   what="every watch open")  # fmt: skip
        time.sleep(2)
        fence.deadline = time.monotonic()  # the holder could not renew: its lease's own deadline has come
        passed = time.monotonic()
        for thread in threads:
            thread.join(timeout=max(0.0, passed + 5 - time.monotonic()))
        running = [thread.name for thread in threads if thread.is_alive()]
        assert not running, f"{len(running)} watch threads still running 5 s after the fence passed"
    finally:
        fence.set()
        for thread in threads:
            thread.join(timeout=30)
