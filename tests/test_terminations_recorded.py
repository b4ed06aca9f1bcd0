"""How container runs ended, from pod events as the pod watch gets them (drift.snapshot.recording.record_pod_event),
without a cluster: a restart stores the previous run's end on that run, a deleted pod's last status is kept, and an
event that repeats what is stored writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from drift.models import Cluster, ContainerInstance
from drift.snapshot.listing import Listing
from drift.snapshot.recording import record_pod_event

pytestmark = pytest.mark.django_db

STARTED = "2026-12-01T09:00:00Z"


def pod(*statuses: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"uid": "u1", "name": "web-1", "namespace": "demo"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        "status": {"startTime": STARTED, "containerStatuses": [{"name": "app", **status} for status in statuses]},
    }


def runs() -> list[tuple[Any, ...]]:
    return list(
        ContainerInstance.objects.order_by("pk").values_list(
            "container_id", "termination_reason", "exit_code", "restart_count", "waiting_reason", "ended_at"
        )
    )


def test_a_restart_a_repeat_and_a_deletion():
    cluster = Cluster.objects.create(name="local", kubeconfig_path="/nonexistent")
    listing = Listing()
    running = {"containerID": "containerd://a", "restartCount": 0, "state": {"running": {"startedAt": STARTED}}}
    assert record_pod_event(cluster, pod(running), listing, timezone.now()).rows > 0
    assert record_pod_event(cluster, pod(running), listing, timezone.now()).rows == 0  # nothing new

    restarted = {
        "containerID": "containerd://b", "restartCount": 1, "state": {"running": {"startedAt": "2026-12-01T09:05:00Z"}},
        "lastState": {"terminated": {"containerID": "containerd://a", "reason": "OOMKilled", "exitCode": 137,
                                     "finishedAt": "2026-12-01T09:04:59Z"}},
    }  # fmt: skip
    record_pod_event(cluster, pod(restarted), listing, timezone.now())
    [first, second] = runs()
    assert first[:5] == ("containerd://a", "OOMKilled", 137, 0, "") and first[5] is not None
    assert second[:5] == ("containerd://b", "", None, 1, "")
    assert record_pod_event(cluster, pod(restarted), listing, timezone.now()).rows == 0  # lastState again: known

    killed = {
        "containerID": "containerd://b", "restartCount": 1,
        "state": {"terminated": {"reason": "Error", "exitCode": 143, "finishedAt": "2026-12-01T09:10:00Z",
                                 "startedAt": "2026-12-01T09:05:00Z"}},
    }  # fmt: skip
    record_pod_event(cluster, pod(killed), listing, timezone.now(), deleted=True)
    [_, second] = runs()
    assert second[:5] == ("containerd://b", "Error", 143, 1, "") and second[5] is not None
