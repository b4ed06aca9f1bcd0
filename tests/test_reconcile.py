"""The periodic snapshot becomes a reconcile while the watcher follows the cluster's pods: a full LIST every
reconcile interval, not every snapshot interval. When the watcher goes quiet, snapshots come back at once, so
that nothing is judged on a clock alone while nobody watches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from drift.models import Cluster, SnapshotRun
from drift.tasks import is_due

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.mark.parametrize(
    ("last_run_ago", "heartbeat_ago", "namespaces", "due"),
    [
        (None, None, [], True),  # never snapshotted
        (31, None, [], True),  # no watcher: every snapshot interval (30 s)
        (31, 5, [], False),  # the watcher follows the pods: the reconcile interval (600 s)
        (599, 5, [], False),
        (601, 5, [], True),
        (31, 120, [], True),  # the watcher went quiet: back to the snapshot interval
        (31, 5, ["team-a"], False),  # namespaced mode: one pod watch per namespace, the reconcile interval too
    ],
)
def test_a_snapshot_is_due_after_the_reconcile_interval_only_while_the_watcher_follows_the_pods(
    last_run_ago, heartbeat_ago, namespaces, due
):
    cluster = Cluster.objects.create(
        name="c", kubeconfig_path="/nonexistent", snapshot_interval_seconds=30, reconcile_interval_seconds=600,
        namespaces=namespaces,
        watch_heartbeat_at=NOW - timedelta(seconds=heartbeat_ago) if heartbeat_ago is not None else None,
    )  # fmt: skip
    if last_run_ago is not None:
        SnapshotRun.objects.create(cluster=cluster, started_at=NOW - timedelta(seconds=last_run_ago))
    assert is_due(cluster, NOW) is due
