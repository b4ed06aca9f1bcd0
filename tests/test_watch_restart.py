"""A watcher killed (kill -9) and started again loses no version: it resumes its WATCH where it stopped, so the
API server replays what changed meanwhile, even when a snapshot recorded a later content in between. Found by
`make chaos` (bench/chaos.py): before, a restarted watcher began with a fresh LIST, which shows only each
object's latest content, and every version written while it was away was lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from drift.clusters import register_cluster
from drift.models import AuditEvent, Cluster, ClusterLease, SourceVersion
from drift.snapshot import snapshot
from tests.kube_helpers import wait_until
from tests.test_watch import churn, forgotten

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def watch_process(cluster: Cluster, log: Path) -> Iterator[subprocess.Popen]:
    """`manage.py watch` as a process of its own on the test database, killed with SIGKILL at the end: nothing
    it did on the way out (there is no way out) can help it resume."""
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}"
        f"/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "watch", "--cluster", cluster.name, "--stall-seconds", "10"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def log_levels(namespace: str, name: str) -> list[str]:
    found = SourceVersion.objects.filter(source__namespace=namespace, source__name=name).order_by("first_seen", "id")
    return [version.data.get("log_level", "") for version in found]


def test_a_watcher_killed_and_started_again_records_every_version_written_while_it_was_away(
    kubeconfig, kube, namespace, tmp_path
):
    cluster, _ = register_cluster("local", str(kubeconfig))
    kube.config_map("app", {"log_level": "INFO"})
    with watch_process(cluster, tmp_path / "watch.log"):
        wait_until(lambda: log_levels(namespace, "app") == ["INFO"], timeout=90, what="the first version")
        kube.edit_config_map("app", {"log_level": "ERROR"})
        wait_until(lambda: log_levels(namespace, "app") == ["INFO", "ERROR"], timeout=30, what="a watched version")
    for level in ("DEBUG", "WARN"):  # while no watcher runs
        kube.edit_config_map("app", {"log_level": level})
    with watch_process(cluster, tmp_path / "watch.log"):
        wait_until(lambda: log_levels(namespace, "app")[-1:] == ["WARN"], timeout=90, what="the latest version")
        wait_until(lambda: len(log_levels(namespace, "app")) >= 4, timeout=10, what="the versions in between")
    assert log_levels(namespace, "app") == ["INFO", "ERROR", "DEBUG", "WARN"]


def test_versions_written_while_the_watcher_was_away_are_kept_even_when_a_snapshot_recorded_a_later_one(
    kubeconfig, kube, namespace, tmp_path
):
    cluster, _ = register_cluster("local", str(kubeconfig))
    kube.config_map("app", {"log_level": "INFO"})
    with watch_process(cluster, tmp_path / "watch.log"):
        wait_until(lambda: log_levels(namespace, "app") == ["INFO"], timeout=90, what="the first version")
        kube.edit_config_map("app", {"log_level": "ERROR"})
        wait_until(lambda: log_levels(namespace, "app") == ["INFO", "ERROR"], timeout=30, what="a watched version")
    for level in ("DEBUG", "WARN"):
        kube.edit_config_map("app", {"log_level": level})
    snapshot(cluster)  # the reconciler sees only the latest content
    assert log_levels(namespace, "app") == ["INFO", "ERROR", "WARN"]
    with watch_process(cluster, tmp_path / "watch.log"):
        wait_until(lambda: len(log_levels(namespace, "app")) >= 4, timeout=90, what="the version in between")
    found = list(
        SourceVersion.objects.filter(source__namespace=namespace, source__name="app").order_by("first_seen", "id")
    )
    assert [v.data["log_level"] for v in found] == ["INFO", "ERROR", "DEBUG", "WARN"]
    assert [int(v.resource_version) for v in found] == sorted(int(v.resource_version) for v in found)
    # Each version once, and one change entry per version after the first.
    assert len({v.resource_version for v in found}) == 4
    changes = AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_CHANGED, object_name="app", namespace=namespace)
    assert sorted(entry.detail["resource_version"] for entry in changes) == sorted(
        v.resource_version for v in found[1:]
    )


def terminate_other_connections() -> int:
    """What a PostgreSQL restart does to every connection but the test's own: the server ends them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_the_watcher_outlives_its_database_connections_ending_and_loses_nothing(kubeconfig, kube, namespace, tmp_path):
    cluster, _ = register_cluster("local", str(kubeconfig))
    kube.config_map("app", {"log_level": "INFO"})
    log = tmp_path / "watch.log"
    with watch_process(cluster, log) as process:
        wait_until(lambda: log_levels(namespace, "app") == ["INFO"], timeout=90, what="the first version")
        assert terminate_other_connections() >= 2  # the main thread's and each watch thread's
        kube.edit_config_map("app", {"log_level": "DEBUG"})
        wait_until(lambda: log_levels(namespace, "app") == ["INFO", "DEBUG"], timeout=15, what="the next version")
        # The main thread rescans the registered clusters every 30 s on its own (ended) connection.
        time.sleep(35)
        kube.edit_config_map("app", {"log_level": "WARN"})
        wait_until(lambda: log_levels(namespace, "app")[-1:] == ["WARN"], timeout=15, what="a version after the rescan")
        assert process.poll() is None, log.read_text()[-3000:]
    assert "Exception in thread" not in log.read_text()
    assert log_levels(namespace, "app") == ["INFO", "DEBUG", "WARN"]


def test_after_a_410_the_watcher_replays_what_the_api_server_still_has_so_no_version_is_lost(
    kubeconfig, kube, namespace, tmp_path
):
    # An API server that restarted (or a watcher away for long) has forgotten the watcher's resourceVersion: the
    # WATCH is answered 410 "too old resource version: R (OLDEST)". A relist shows only the latest content; the
    # versions written since OLDEST are still in the API server's watch cache, and a watch from there brings them.
    wait_until(lambda: forgotten(kubeconfig, "1") or churn(kubeconfig, namespace), timeout=240, interval=1,
               what="the API server to forget resourceVersion 1")  # fmt: skip
    cluster, _ = register_cluster("local", str(kubeconfig))
    kube.config_map("app", {"log_level": "INFO"})
    with watch_process(cluster, tmp_path / "watch.log"):
        wait_until(lambda: log_levels(namespace, "app") == ["INFO"], timeout=90, what="the first version")
    for level in ("DEBUG", "WARN"):
        kube.edit_config_map("app", {"log_level": level})
    # Where the watcher stopped, forgotten by the API server since (whatever the killed one had kept in its lease).
    ClusterLease.objects.filter(cluster=cluster).update(resume_from={"configmaps": "1"})
    with watch_process(cluster, tmp_path / "watch.log"):
        wait_until(lambda: log_levels(namespace, "app")[-1:] == ["WARN"], timeout=90, what="the latest version")
        wait_until(lambda: len(log_levels(namespace, "app")) >= 3, timeout=150, what="the version in between")
    assert "410 Gone" in (tmp_path / "watch.log").read_text()
    assert log_levels(namespace, "app") == ["INFO", "DEBUG", "WARN"]
