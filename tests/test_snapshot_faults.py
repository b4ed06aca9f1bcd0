"""Bad input and faults on the real cluster: odd ConfigMaps, an API server that goes away, a forbidden
namespace, a pod that vanishes mid-probe, an exec that hangs. Each ends with a clear record and
nothing already recorded lost."""

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.utils import timezone
from kubernetes import client as k8s

from drift.clusters import register_cluster
from drift.models import AuditEvent, Observation, Pod, SnapshotRun, Source, SourceVersion
from drift.snapshot import snapshot
from drift.tasks import SNAPSHOT_TIME_LIMIT
from drift.verdicts import drift_rows
from tests.faultproxy import FaultProxy
from tests.kube_helpers import (
    delete_cluster_grant,
    deployment,
    grant,
    grant_cluster_wide,
    service_account_kubeconfig,
    wait_until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

READ_RULES = [
    {"apiGroups": [""], "resources": ["configmaps", "secrets", "pods"], "verbs": ["get", "list"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
]


@pytest.fixture
def proxy(kubeconfig, tmp_path):
    running = FaultProxy(kubeconfig, tmp_path).start()
    yield running
    running.stop()


def env_container(config_map: str) -> dict:
    return {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": config_map}}]}


def ready_pod(kube, name: str):
    kube.wait_deployment_ready(name)
    [pod] = kube.ready_pods(name)
    kube.wait_exec_ready(pod.metadata.name)
    return pod


def rows_for(cluster, namespace, workload, now=None):
    return [
        row
        for row in drift_rows(cluster, namespace=namespace, now=now)
        if row.workload.name == workload and row.source.name != "kube-root-ca.crt"
    ]


# Long enough that no cycle comes due on the clock while a test runs; time between cycles is made by moving the
# reads into the past (as_if_an_interval_passed), so no retry decision races with how long the snapshots take.
RETRY_INTERVAL_SECONDS = 600


def as_if_an_interval_passed(cluster, reads) -> None:
    """Move these reads one snapshot interval into the past: the next cycle's retry decision sees that much time
    gone since each of them, however fast or slow the machine ran them."""
    Observation.objects.filter(pk__in=list(reads.values_list("pk", flat=True))).update(
        observed_at=F("observed_at") - timedelta(seconds=cluster.snapshot_interval_seconds)
    )


def test_huge_binary_and_many_keyed_config_maps(kubeconfig, kube):
    many = {f"key-{index:04d}": f"value {index}" for index in range(1000)}
    odd = {"app.properties": "a=1\nb=2\n", "log-level": "INFO", "_under": "x", "with.many.dots": "y"}
    kube.config_map("many", many)
    kube.config_map("odd", odd)
    kube.config_map("huge", {"blob.txt": "x" * 1_000_000})
    non_utf8 = "//79AICBgg=="  # base64 of ff fe fd 00 80 81 82: not UTF-8 text
    kube.core.create_namespaced_config_map(
        kube.namespace, {"metadata": {"name": "binary"}, "binaryData": {"raw.bin": non_utf8}, "data": {"t": "ok"}}
    )
    containers = [
        {**env_container("many"), "envFrom": [{"configMapRef": {"name": "many"}}, {"configMapRef": {"name": "odd"}}]}
    ]
    containers[0]["volumeMounts"] = [
        {"name": "huge", "mountPath": "/etc/huge"},
        {"name": "binary", "mountPath": "/etc/binary"},
    ]
    volumes = [{"name": "huge", "configMap": {"name": "huge"}}, {"name": "binary", "configMap": {"name": "binary"}}]
    kube.create_deployment(deployment("odd", containers, volumes))
    ready_pod(kube, "odd")
    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))

    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    versions = {v.source.name: v for v in SourceVersion.objects.filter(source__namespace=kube.namespace)}
    assert len(versions["many"].key_hashes) == 1000
    assert versions["huge"].size_bytes == 1_000_000
    assert versions["binary"].binary_keys == ["raw.bin"]
    assert "raw.bin" in versions["binary"].key_hashes
    assert set(versions["odd"].data) == set(odd)
    assert {row.verdict for row in rows_for(cluster, kube.namespace, "odd")} == {"fresh"}

    kube.edit_config_map("many", {"key-0500": "changed"})
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    change = AuditEvent.objects.get(action="config.changed", object_name="many")
    assert change.detail["changed"] == ["key-0500"]
    assert change.detail["added"] == change.detail["removed"] == []
    many_rows = [row for row in rows_for(cluster, kube.namespace, "odd") if row.source.name == "many"]
    assert [(row.verdict, row.evidence) for row in many_rows] == [("stale", "observed")]


def test_an_unreachable_api_is_recorded_and_loses_nothing(proxy, kube):
    kube.config_map("special-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "volumeMounts": [{"name": "c", "mountPath": "/etc/config"}]}
    kube.create_deployment(
        deployment("volume-demo", [container], [{"name": "c", "configMap": {"name": "special-config"}}])
    )
    kube.wait_deployment_ready("volume-demo")
    cluster, _ = register_cluster("local", kubeconfig_path=str(proxy.kubeconfig_path()))
    # Longer than any snapshot may run, so the volume is propagating right after its change however loaded the
    # machine; past the window is judged at an explicit moment, not after a sleep.
    cluster.propagation_window_seconds = 2 * SNAPSHOT_TIME_LIMIT
    cluster.save()
    snapshot(cluster)
    kube.edit_config_map("special-config", {"log_level": "DEBUG"})
    snapshot(cluster)
    [row] = rows_for(cluster, kube.namespace, "volume-demo")
    assert row.verdict == "propagating"
    recorded = (Source.objects.count(), SourceVersion.objects.count(), Pod.objects.filter(deleted_at=None).count())

    proxy.go_away()
    error = io.StringIO()
    with pytest.raises(CommandError, match="unreachable"):
        call_command("snapshot", "--cluster", "local", stdout=io.StringIO(), stderr=error)
    failed = SnapshotRun.objects.filter(cluster=cluster).first()
    assert failed.status == SnapshotRun.Status.FAILED
    assert "unreachable" in failed.error
    assert (
        Source.objects.count(),
        SourceVersion.objects.count(),
        Pod.objects.filter(deleted_at=None).count(),
    ) == recorded
    with pytest.raises(CommandError):
        call_command("snapshot", "--cluster", "local", stdout=io.StringIO(), stderr=io.StringIO())
    assert AuditEvent.objects.filter(action="snapshot.failed").count() == 1, "one entry per outage, not per cycle"

    beyond_the_window = timezone.now() + timedelta(seconds=cluster.propagation_window_seconds + 1)
    [row] = rows_for(cluster, kube.namespace, "volume-demo", now=beyond_the_window)
    assert row.verdict == "propagating", "no verdict may turn fresh while the cluster cannot be seen"
    assert "unreachable since" in row.reason


def test_a_forbidden_namespace_becomes_unknown_and_the_rest_proceeds(kubeconfig, kube_api, kube, tmp_path):
    other = f"t-{uuid.uuid4().hex[:10]}-secret"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": other, "labels": {"driftwatch.io/test": "true"}}})
    role = None
    try:
        kube.config_map("env-config", {"log_level": "INFO"})
        kube.create_deployment(deployment("env-demo", [env_container("env-config")]))
        core.create_namespaced_config_map(other, {"metadata": {"name": "env-config"}, "data": {"log_level": "INFO"}})
        k8s.AppsV1Api(kube_api).create_namespaced_deployment(other, deployment("hidden", [env_container("env-config")]))
        ready_pod(kube, "env-demo")
        wait_until(lambda: core.list_namespaced_pod(other).items, what="hidden pod")

        cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
        snapshot(cluster)
        hidden_pods = Pod.objects.filter(namespace=other, deleted_at=None).count()
        assert hidden_pods == 1

        restricted = service_account_kubeconfig(kube_api, kubeconfig, kube.namespace, "reader", tmp_path / "kc")
        grant(kube_api, kube.namespace, kube.namespace, "reader", READ_RULES)
        role = grant_cluster_wide(
            kube_api, kube.namespace, "reader", [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]
        )
        cluster.kubeconfig_path = str(restricted)
        cluster.save()
        wait_until(lambda: snapshot(cluster).status == SnapshotRun.Status.PARTIAL, timeout=30, what="RBAC to apply")

        run = SnapshotRun.objects.filter(cluster=cluster).first()
        assert other in run.forbidden_namespaces
        assert kube.namespace not in run.forbidden_namespaces
        assert Pod.objects.filter(namespace=other, deleted_at=None).count() == hidden_pods, "nothing forgotten"
        [hidden] = [row for row in drift_rows(cluster, namespace=other) if row.source.name == "env-config"]
        assert hidden.verdict == "unknown"
        assert "forbidden" in hidden.reason
        [visible] = rows_for(cluster, kube.namespace, "env-demo")
        assert (visible.verdict, visible.evidence) == ("fresh", "observed")
    finally:
        if role:
            delete_cluster_grant(kube_api, role)
        core.delete_namespace(other, propagation_policy="Background")


def test_a_pod_that_vanishes_mid_probe(proxy, kube):
    kube.config_map("env-config", {"log_level": "INFO"})
    kube.create_deployment(deployment("env-demo", [env_container("env-config")]))
    pod = ready_pod(kube, "env-demo")
    name = pod.metadata.name

    def delete_pod_first(request_line: str) -> None:
        if f"/pods/{name}/exec" in request_line:
            kube.core.delete_namespaced_pod(name, kube.namespace, grace_period_seconds=0)
            wait_until(
                lambda: not [p for p in kube.core.list_namespaced_pod(kube.namespace).items if p.metadata.name == name]
            )

    proxy.on_exec = delete_pod_first
    cluster, _ = register_cluster("local", kubeconfig_path=str(proxy.kubeconfig_path()))
    run = snapshot(cluster)

    assert run.status == SnapshotRun.Status.SUCCEEDED
    observation = Observation.objects.get(consumption__container__pod__name=name, consumption__mode="envFrom")
    assert not observation.ok
    assert "gone" in observation.reason or "exec failed" in observation.reason


def test_an_exec_that_hangs_times_out(proxy, kube):
    kube.config_map("env-config", {"log_level": "INFO"})
    kube.create_deployment(deployment("env-demo", [env_container("env-config")]))
    ready_pod(kube, "env-demo")
    proxy.stall_exec = True
    cluster, _ = register_cluster("local", kubeconfig_path=str(proxy.kubeconfig_path()))
    cluster.exec_timeout_seconds = 2
    cluster.save()

    run = snapshot(cluster)

    assert run.status == SnapshotRun.Status.SUCCEEDED
    assert run.exec_probes >= 1  # other tests' namespaces may still hold pods
    observation = Observation.objects.get(
        consumption__container__pod__namespace=kube.namespace, consumption__mode="envFrom"
    )
    assert observation.reason == "exec timed out after 2s"
    [row] = rows_for(cluster, kube.namespace, "env-demo")
    assert (row.verdict, row.evidence) == ("fresh", "inferred")
    assert "timed out" in row.reason


def test_driftreport_is_valid_json_for_odd_keys(kubeconfig, kube):
    kube.config_map("odd", {"a.b-c_d": '<script>alert("x")</script>', "unicode.value": "ünïcode ✓"})
    kube.create_deployment(deployment("odd", [env_container("odd")]))
    ready_pod(kube, "odd")
    register_cluster("local", kubeconfig_path=str(kubeconfig))
    call_command("snapshot", stdout=io.StringIO())
    out = io.StringIO()
    call_command("driftreport", "--json", "--namespace", kube.namespace, stdout=out)
    rows = json.loads(out.getvalue())
    assert {row["source"]["name"] for row in rows} >= {"odd"}


def test_an_exec_that_timed_out_is_retried_on_a_later_cycle_with_backoff(proxy, kube):
    """A passing failure does not leave the container inferred for its whole life: the next due cycle
    reads it, observed; while it keeps failing, the cycles between retries leave it alone."""
    kube.config_map("env-config", {"log_level": "INFO"})
    kube.create_deployment(deployment("env-demo", [env_container("env-config")]))
    ready_pod(kube, "env-demo")
    proxy.stall_exec = True
    cluster, _ = register_cluster("local", kubeconfig_path=str(proxy.kubeconfig_path()))
    cluster.exec_timeout_seconds = 2
    cluster.snapshot_interval_seconds = RETRY_INTERVAL_SECONDS
    cluster.save()
    mine = Observation.objects.filter(
        consumption__container__pod__namespace=kube.namespace, consumption__mode="envFrom"
    )

    snapshot(cluster)
    assert [o.reason for o in mine.order_by("observed_at")] == ["exec timed out after 2s"]
    snapshot(cluster)  # at once: not due yet
    assert mine.count() == 1
    as_if_an_interval_passed(cluster, mine)
    snapshot(cluster)  # one interval later: retried, still stalled
    assert [o.reason for o in mine.order_by("observed_at")] == ["exec timed out after 2s"] * 2
    as_if_an_interval_passed(cluster, mine)
    snapshot(cluster)  # two failures in a row: the next try waits two intervals
    assert mine.count() == 2

    proxy.stall_exec = False
    as_if_an_interval_passed(cluster, mine)
    snapshot(cluster)
    latest = mine.order_by("-observed_at").first()
    assert latest.ok, latest.reason
    [row] = rows_for(cluster, kube.namespace, "env-demo")
    assert (row.verdict, row.evidence) == ("fresh", "observed")


def test_an_exec_cut_off_before_its_exit_status_is_a_passing_failure_not_an_empty_read(proxy, kube):
    """The connection closes after the upgrade, before any output or exit status: that is no empty
    environment (which would read as every key absent), but an interrupted exec, retried next cycle."""
    kube.config_map("env-config", {"log_level": "INFO"})
    kube.create_deployment(deployment("env-demo", [env_container("env-config")]))
    ready_pod(kube, "env-demo")
    proxy.cut_exec = True
    cluster, _ = register_cluster("local", kubeconfig_path=str(proxy.kubeconfig_path()))
    cluster.snapshot_interval_seconds = RETRY_INTERVAL_SECONDS
    cluster.save()
    mine = Observation.objects.filter(
        consumption__container__pod__namespace=kube.namespace, consumption__mode="envFrom"
    )

    snapshot(cluster)
    [cut] = mine
    assert not cut.ok and cut.reason.startswith("exec interrupted"), cut.reason
    [row] = rows_for(cluster, kube.namespace, "env-demo")
    assert (row.verdict, row.evidence) == ("fresh", "inferred")

    proxy.cut_exec = False
    as_if_an_interval_passed(cluster, mine)
    snapshot(cluster)
    [row] = rows_for(cluster, kube.namespace, "env-demo")
    assert (row.verdict, row.evidence) == ("fresh", "observed")
