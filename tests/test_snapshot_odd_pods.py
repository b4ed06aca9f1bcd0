"""One odd pod must not blind a cluster: a key named like an option, a file that cannot be read, an error in
the middle of a cycle. Each odd thing is reported where it is; everything else of the cycle is recorded, and
a run always ends with its reason. Files are read the way test_snapshot_files does (a host folder written
like the kubelet's atomic writer, `file_probes=always`)."""

import logging
import uuid

import pytest

from drift.clusters import register_cluster
from drift.models import AuditEvent, Cluster, Observation, SnapshotRun, Source, SourceVersion
from drift.snapshot import cycle, snapshot
from drift.verdicts import drift_rows
from tests.kube_helpers import deployment
from tests.test_snapshot_files import kubelet_writes

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]


@pytest.fixture
def cluster(kubeconfig):
    registered, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    Cluster.objects.filter(pk=registered.pk).update(file_probes=Cluster.FileProbes.ALWAYS)
    registered.refresh_from_db()
    return registered


def volume_app(kube, name: str, config_map: str, mount) -> None:
    container = {"name": "app", "image": "nginx:1.27", "volumeMounts": [{"name": "c", "mountPath": str(mount)}]}
    kube.create_deployment(deployment(name, [container], [{"name": "c", "configMap": {"name": config_map}}]))
    kube.wait_deployment_ready(name)
    [pod] = kube.ready_pods(name)
    kube.wait_exec_ready(pod.metadata.name)


def volume_row(cluster, namespace, workload):
    [row] = [
        r
        for r in drift_rows(cluster, namespace=namespace)
        if r.workload.name == workload and r.mode == "volume" and r.source.name != "kube-root-ca.crt"
    ]
    return row


def test_a_key_named_like_an_option_is_read_as_a_file(cluster, kube, tmp_path):
    data = {"-n": "first line\nsecond line\n", "log_level": "INFO"}
    kube.config_map("odd-keys", data)
    mount = tmp_path / "etc-config"
    kubelet_writes(mount, data)
    volume_app(kube, "odd-keys", "odd-keys", mount)

    run = snapshot(cluster)
    assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
    row = volume_row(cluster, kube.namespace, "odd-keys")
    assert (row.verdict, row.evidence) == ("fresh", "observed"), row.reason
    observation = Observation.objects.filter(consumption_id=row.consumption_id).latest()
    assert set(observation.key_hashes) == {"-n", "log_level"}


def test_an_unreadable_file_is_named_for_its_consumer_and_leaves_the_others_observed(cluster, kube, tmp_path):
    """The probe that could not read is not evidence: its consumer's verdict falls back to inference (as for any
    exec that fails) and says which file could not be read."""
    kube.config_map("readable", {"log_level": "INFO"})
    kube.config_map("unreadable", {"log_level": "INFO"})
    good, bad = tmp_path / "good", tmp_path / "bad"
    kubelet_writes(good, {"log_level": "INFO"})
    bad.mkdir()
    (bad / "log_level").mkdir()  # exists, but `cat` cannot read it
    volume_app(kube, "good", "readable", good)
    volume_app(kube, "bad", "unreadable", bad)

    run = snapshot(cluster)
    assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
    broken = volume_row(cluster, kube.namespace, "bad")
    assert broken.evidence == "inferred"
    assert "file(s) unreadable: log_level" in broken.reason
    fine = volume_row(cluster, kube.namespace, "good")
    assert (fine.verdict, fine.evidence) == ("fresh", "observed")


def test_a_run_interrupted_by_an_error_ends_failed_with_its_reason_and_no_value(cluster, kube, monkeypatch, caplog):
    """Any error inside a cycle, not only an unreachable API: the run never stays `running`, its reason names
    the phase and the error's type, and never the error's message (which may quote a value)."""
    canary = f"canary-{uuid.uuid4().hex}"
    kube.config_map("settings", {"mode": "a"})

    def planning_fails(*args, **kwargs):
        raise RuntimeError(f"value {canary} in an error message")

    monkeypatch.setattr(cycle, "plan_probes", planning_fails)
    with caplog.at_level(logging.DEBUG):
        run = snapshot(cluster)

    run.refresh_from_db()
    assert run.status == SnapshotRun.Status.FAILED
    assert run.finished_at is not None
    assert run.error.startswith("RuntimeError while probing (drift/snapshot/cycle.py:"), run.error
    assert canary not in run.error
    assert canary not in caplog.text
    assert all(canary not in event.message for event in AuditEvent.objects.all())
    assert AuditEvent.objects.filter(action="snapshot.failed", message__contains="RuntimeError while probing").exists()
    assert not SnapshotRun.objects.filter(status=SnapshotRun.Status.RUNNING).exists()
    assert Source.objects.filter(name="settings", namespace=kube.namespace).exists(), "recorded before it stays"
    monkeypatch.undo()
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED


def test_a_config_map_value_holding_a_nul_character_is_recorded_by_its_hash(cluster, kube):
    """PostgreSQL's jsonb refuses NUL: the value is kept as its hash only, and the cycle goes on."""
    kube.core.create_namespaced_config_map(
        kube.namespace, {"metadata": {"name": "with-nul"}, "data": {"nul": "a\x00b", "plain": "text"}}
    )
    run = snapshot(cluster)
    assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
    version = SourceVersion.objects.get(source__name="with-nul", source__namespace=kube.namespace)
    assert set(version.key_hashes) == {"nul", "plain"}
    assert version.data == {"plain": "text"}
