"""Restoring a ConfigMap version on the real control plane: a preview (diff against the live content, the API
server's dry run), then an update with the preview's resourceVersion as precondition and fieldManager=driftwatch,
refused when someone changed the ConfigMap after the preview, audited before the call either way."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from drift.history import history
from drift.models import AuditEvent, Cluster
from drift.restore import RestoreRefused, preview, restore
from drift.snapshot import snapshot
from drift.vocabulary import SourceKind

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

BIG = "\n".join(f"line {number} " + "x" * 60 for number in range(3000))  # past the diff caps


@pytest.fixture
def cluster(kubeconfig, namespace):
    return Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])


@pytest.fixture
def edited(cluster, kube):
    """app-config: #1 {level: INFO, big: BIG}, then #2 {level: DEBUG} (big removed), both recorded."""
    kube.config_map("app-config", {"level": "INFO", "big": BIG})
    assert snapshot(cluster).status == "succeeded"
    kube.core.replace_namespaced_config_map(
        "app-config", kube.namespace, {"metadata": {"name": "app-config"}, "data": {"level": "DEBUG"}}
    )
    assert snapshot(cluster).status == "succeeded"
    versions = history(cluster, kube.namespace, SourceKind.CONFIG_MAP, "app-config")
    assert len(versions) == 2
    return versions


def live(kube):
    return kube.core.read_namespaced_config_map("app-config", kube.namespace)


def test_a_restore_is_refused_when_the_config_map_changed_after_the_preview(cluster, kube, edited):
    shown = preview(edited[0].version)
    assert {diff.key: diff.status for diff in shown.diffs} == {"big": "added", "level": "changed"}
    kube.edit_config_map("app-config", {"level": "WARN"})  # someone else, after the preview

    with pytest.raises(RestoreRefused, match="changed after the preview"):
        restore(edited[0].version, "alice", shown.live_resource_version)

    assert live(kube).data == {"level": "WARN"}
    actions = list(
        AuditEvent.objects.filter(object_name="app-config", action__startswith="config.restore").values_list(
            "action", flat=True
        )
    )
    assert actions == [AuditEvent.Action.RESTORE_REFUSED, AuditEvent.Action.RESTORE_REQUESTED]  # newest first


def test_a_restore_puts_the_stored_data_back_with_its_audit_entry(cluster, kube, edited):
    shown = preview(edited[0].version)
    dry = restore(edited[0].version, "alice", shown.live_resource_version, dry_run=True)
    assert dry.dry_run and live(kube).data == {"level": "DEBUG"}

    done = restore(edited[0].version, "alice", shown.live_resource_version)

    after = live(kube)
    assert after.data == {"level": "INFO", "big": BIG}  # the large value from the stored version, whole
    assert after.metadata.resource_version == done.resource_version
    assert "driftwatch" in {entry.manager for entry in after.metadata.managed_fields}
    entries = list(AuditEvent.objects.filter(object_name="app-config", actor="alice").order_by("id"))
    assert [entry.action for entry in entries] == [
        AuditEvent.Action.RESTORE_DRY_RUN,
        AuditEvent.Action.RESTORE_REQUESTED,
        AuditEvent.Action.RESTORED,
    ]
    assert entries[-1].detail["version"] == 1 and entries[-1].detail["new_resource_version"] == done.resource_version


def test_the_restore_command_exits_non_zero_with_the_reason(cluster, kube, edited):
    namespace = kube.namespace
    with pytest.raises(CommandError, match="changed after the preview"):
        call_command(
            "restore", "configmap/app-config", "-n", namespace, "--version", "1", "--actor", "bob",
            "--resource-version", "1", stdout=io.StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match="Secrets cannot be restored"):
        call_command("restore", "secret/x", "-n", namespace, "--version", "1", "--actor", "bob", stdout=io.StringIO())
    with pytest.raises(CommandError, match="there is no #9"):
        call_command(
            "restore", "configmap/app-config", "-n", namespace, "--version", "9", "--actor", "bob",
            stdout=io.StringIO(),
        )  # fmt: skip
    out = io.StringIO()
    call_command("restore", "configmap/app-config", "-n", namespace, "--version", "1", "--actor", "bob", stdout=out)
    assert "restored to #1" in out.getvalue() and live(kube).data["level"] == "INFO"


def test_a_restore_may_roll_out_the_workloads_that_read_it_only_at_start(cluster, kube, edited, private_celery_queue):
    from tests.kube_helpers import deployment

    env = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "app-config"}}]}
    files = {"name": "app", "image": "nginx:1.27", "volumeMounts": [{"name": "c", "mountPath": "/etc/c"}]}
    kube.create_deployment(deployment("reads-env", [env]))
    kube.create_deployment(
        deployment("reads-files", [files], volumes=[{"name": "c", "configMap": {"name": "app-config"}}])
    )
    kube.wait_deployment_ready("reads-env")
    kube.wait_deployment_ready("reads-files")
    assert snapshot(cluster).status == "succeeded"
    shown = preview(edited[0].version)
    assert [(w.kind, w.name) for w in shown.consumers] == [("Deployment", "reads-env")]

    done = restore(edited[0].version, "alice", shown.live_resource_version, roll_out=True)

    assert [(r.kind, r.name, r.requested_by) for r in done.rollouts] == [("Deployment", "reads-env", "alice")]
    assert done.rollouts[0].status in ("in_progress", "complete"), done.rollouts[0].message
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ROLLOUT_REQUESTED, object_name="reads-env").exists()
