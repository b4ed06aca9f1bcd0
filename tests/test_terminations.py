"""How containers ended, recorded as it happens: on the real node, a container that exits with an error gets
its reason and exit code stored, by the snapshot and by the pod watch; one that keeps crashing gets its restart
count and CrashLoopBackOff; and what is already stored is not written again."""

from __future__ import annotations

from typing import Any

import pytest

from drift.clusters import register_cluster
from drift.models import ContainerInstance, SnapshotRun
from drift.snapshot import snapshot
from tests.kube_helpers import wait_until
from tests.test_podwatch import started, watching_everything
from tests.test_real_node import REAL_NODE_LABEL, TOOLBOX, find_real_node

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(kubeconfig, kube_api, namespace):
    find_real_node(kube_api)
    registered, _ = register_cluster("local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])
    return registered


def failing_pod(name: str, exit_code: int, restart_policy: str) -> dict[str, Any]:
    key, value = REAL_NODE_LABEL
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart_policy,
            "nodeSelector": {key: value},
            "tolerations": [{"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}],
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "app",
                    "image": TOOLBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", f"exit {exit_code}"],
                }
            ],
        },
    }


def container_status(kube: Any, name: str) -> Any:
    statuses = kube.core.read_namespaced_pod(name, kube.namespace).status.container_statuses or []
    return statuses[0] if statuses else None


def runs_of(pod: str) -> list[tuple[Any, ...]]:
    return list(
        ContainerInstance.objects.filter(pod__name=pod)
        .order_by("first_seen", "pk")
        .values_list("termination_reason", "exit_code", "restart_count", "waiting_reason", "finished_at")
    )


def test_the_snapshot_stores_how_a_container_ended_once(cluster, kube):
    kube.core.create_namespaced_pod(kube.namespace, failing_pod("fails", 3, "Never"))
    wait_until(
        lambda: (status := container_status(kube, "fails")) and status.state.terminated,
        timeout=90, what="the container exited",
    )  # fmt: skip
    finished = container_status(kube, "fails").state.terminated.finished_at

    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    assert runs_of("fails") == [("Error", 3, 0, "", finished)]
    # Nothing changed since: nothing is written.
    second = snapshot(cluster)
    assert (second.status, second.rows_written) == (SnapshotRun.Status.SUCCEEDED, 0)


def test_the_pod_watch_stores_a_crash_loop_and_the_end_of_each_run(cluster, kube):
    with watching_everything(cluster) as watches:
        wait_until(lambda: started(watches), timeout=120, what="every watch open")
        kube.core.create_namespaced_pod(kube.namespace, failing_pod("crashes", 7, "Always"))
        wait_until(
            lambda: (status := container_status(kube, "crashes")) and status.restart_count >= 1
            and status.last_state.terminated and status.state.waiting,
            timeout=120, what="the container restarted and waits in CrashLoopBackOff",
        )  # fmt: skip
        status = container_status(kube, "crashes")
        wait_until(
            lambda: any(run[3] == "CrashLoopBackOff" for run in runs_of("crashes")),
            timeout=30, interval=0.2, what=f"the crash loop recorded: {runs_of('crashes')}",
        )  # fmt: skip
    runs = runs_of("crashes")
    ended = [run for run in runs if run[0]]
    assert ended and all(run[:2] == ("Error", 7) for run in ended), runs
    assert status.last_state.terminated.finished_at in {run[4] for run in ended}, (status.last_state, runs)
    assert runs[-1][2:4] == (status.restart_count, "CrashLoopBackOff"), runs
