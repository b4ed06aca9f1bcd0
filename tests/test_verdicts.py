"""DriftRow's JSON (driftreport --json) keeps its shape: the source and workload as {"kind", "name"} objects,
verdicts, modes and evidence as plain strings, times as ISO 8601."""

import json
from datetime import UTC, datetime

from drift.verdicts import DriftRow, SourceRef, WorkloadRef
from drift.vocabulary import Evidence, Mode, Verdict

STARTED = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)


def row() -> DriftRow:
    return DriftRow(
        cluster="local", namespace="demo", pod="env-demo-1", container="app", init_container=False,
        workload=WorkloadRef("Deployment", "env-demo"), source=SourceRef("ConfigMap", "env-config"),
        mode=Mode.ENV_FROM, verdict=Verdict.STALE, evidence=Evidence.OBSERVED, reason="read at start",
        running_version="10", current_version="11", stale_since=STARTED, optional=False, split=True,
        observed_at=None, container_started_at=STARTED, mount_path="", consumption_id=1, workload_id=2, pod_id=3,
    )  # fmt: skip


def test_as_json_has_the_driftreport_shape():
    text = json.dumps([row().as_json()], indent=2)

    assert json.loads(text) == [
        {
            "cluster": "local", "namespace": "demo", "pod": "env-demo-1", "container": "app",
            "init_container": False, "workload": {"kind": "Deployment", "name": "env-demo"},
            "source": {"kind": "ConfigMap", "name": "env-config"}, "mode": "envFrom", "verdict": "stale",
            "evidence": "observed", "reason": "read at start", "running_version": "10", "current_version": "11",
            "stale_since": "2026-11-29T04:00:00+00:00", "optional": False, "split": True, "observed_at": None,
            "container_started_at": "2026-11-29T04:00:00+00:00", "mount_path": "", "consumption_id": 1,
            "workload_id": 2, "pod_id": 3,
        }
    ]  # fmt: skip
    assert list(json.loads(text)[0]) == [
        "cluster", "namespace", "pod", "container", "init_container", "workload", "source", "mode", "verdict",
        "evidence", "reason", "running_version", "current_version", "stale_since", "optional", "split",
        "observed_at", "container_started_at", "mount_path", "consumption_id", "workload_id", "pod_id",
    ]  # fmt: skip
    assert list(json.loads(text)[0]["source"]) == ["kind", "name"]


def test_refs_read_as_people_write_them():
    assert str(SourceRef("Secret", "token")) == "Secret token"
    assert str(WorkloadRef("StatefulSet", "db")) == "StatefulSet/db"
