"""A Secret's value never reaches Postgres, Redis or a log line: the worker hashes it as it arrives.

The snapshot runs the production way, as a Celery task through the real Redis broker in a real
worker process (logging at DEBUG); then the whole test database is dumped with pg_dump, and it, Redis and what
that worker logged are searched for the canary."""

import base64
import logging
import subprocess
import uuid

import pytest
import redis
from django.conf import settings
from django.db import connection

from drift.clusters import register_cluster
from drift.models import Cluster, Observation, SnapshotRun, SourceVersion
from drift.tasks import snapshot_cluster
from drift.verdicts import drift_rows
from tests.kube_helpers import deployment, wait_until
from tests.test_snapshot_files import kubelet_writes

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def database_dump() -> str:
    database = settings.DATABASES["default"]
    result = subprocess.run(
        ["pg_dump", "--data-only", "-h", database["HOST"], "-p", str(database["PORT"]), "-U", database["USER"],
         connection.settings_dict["NAME"]],
        env={"PGPASSWORD": database["PASSWORD"], "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout


def redis_contents() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL)
    values = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            values.append(client.get(key) or b"")
        elif kind == b"list":
            values.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            values.extend(client.hgetall(key).values())
    return b"\n".join(values).decode("utf-8", "replace")


def snapshot_in_worker(cluster) -> tuple[str, str]:
    """The run's status and the task's id. Task results are not stored (nothing reads them): the run record says
    how the cycle ended."""
    runs = cluster.runs.count()
    task = snapshot_cluster.delay(cluster.pk)
    wait_until(
        lambda: cluster.runs.exclude(status=SnapshotRun.Status.RUNNING).count() > runs, timeout=120, what="the run"
    )
    return cluster.runs.first().status, task.id


@pytest.mark.parametrize("celery_worker_process", ["DEBUG"], indirect=True)
def test_a_secret_canary_never_appears_in_the_database_redis_or_logs(
    kubeconfig, kube, celery_worker_process, celery_worker_log, tmp_path
):
    canary = f"canary-{uuid.uuid4().hex}"  # 39 characters: its base64 begins that of every value made from it
    encoded = base64.b64encode(canary.encode()).decode()
    kube.secret("app-secret", {"token": canary, "password": canary + "-2"})
    # The Secret's files, read through exec as on a real node (see test_snapshot_files): one named like an
    # option, and one that cannot be read, whose reason must name the key and nothing of its value.
    files = {"token": canary, "-n": canary + "-n"}
    kube.secret("file-secret", {**files, "unreadable": canary + "-u"})
    kubelet_writes(tmp_path / "secret-files", files)
    (tmp_path / "secret-files" / "unreadable").mkdir()
    container = {
        "name": "app",
        "image": "nginx:1.27",
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "token"}}}],
        "envFrom": [{"secretRef": {"name": "app-secret"}, "prefix": "S_"}],
        "volumeMounts": [
            {"name": "secret", "mountPath": "/etc/secret"},
            {"name": "files", "mountPath": str(tmp_path / "secret-files")},
        ],
    }
    volumes = [
        {"name": "secret", "secret": {"secretName": "app-secret"}},
        {"name": "files", "secret": {"secretName": "file-secret"}},
    ]
    kube.create_deployment(deployment("uses-secret", [container], volumes))
    kube.wait_deployment_ready("uses-secret")
    [pod] = kube.ready_pods("uses-secret")
    kube.wait_exec_ready(pod.metadata.name)
    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    # Files are read on this simulated node only when asked (the default skips them: no container files).
    Cluster.objects.filter(pk=cluster.pk).update(file_probes=Cluster.FileProbes.ALWAYS)

    first_status, first_task = snapshot_in_worker(cluster)
    assert first_status == SnapshotRun.Status.SUCCEEDED
    kube.edit_secret("app-secret", {"token": canary + "-rotated"})
    second_status, second_task = snapshot_in_worker(cluster)
    assert second_status == SnapshotRun.Status.SUCCEEDED
    unreadable = Observation.objects.get(consumption__source_name="file-secret", consumption__mode="volume")
    assert (unreadable.ok, unreadable.reason) == (False, "file(s) unreadable: unreadable")

    # The snapshot really read the Secret and the container's environment...
    versions = SourceVersion.objects.filter(source__name="app-secret", source__namespace=kube.namespace)
    assert versions.count() == 2
    assert all(set(version.key_hashes) == {"token", "password"} and version.data == {} for version in versions)
    assert (
        Observation.objects.filter(
            consumption__source_name="app-secret", consumption__mode__in=["env", "envFrom"], ok=True
        ).count()
        == 2
    )
    rows = [row for row in drift_rows(cluster, namespace=kube.namespace) if row.source.name == "app-secret"]
    assert {(row.mode, row.verdict) for row in rows} >= {("env", "stale"), ("envFrom", "stale")}

    # ...and yet its value is nowhere: not in the database, not in Redis, not in what the worker that read it logged.
    dump = database_dump()
    assert "app-secret" in dump, "the dump covers the test database"
    worker_log = celery_worker_log()
    for task in (first_task, second_task):
        assert f"drift.tasks.snapshot_cluster[{task}] succeeded" in worker_log, "the log covers both snapshots"
    assert " DEBUG/MainProcess] " in worker_log, "the worker logged at DEBUG"
    for needle in (canary, encoded):
        assert needle not in dump
        assert needle not in redis_contents()
        assert needle not in worker_log


def test_a_secret_canary_edited_through_the_audit_path_is_nowhere_either(kubeconfig, kube, caplog, plain_http):
    """The watcher hashes each Secret as its event arrives, and the audit webhook keeps metadata only: after a
    Secret is created and edited by a named person, its versions and author are recorded, its value nowhere."""
    import threading

    from drift.models import AuditEvent, KubeAuditEvent
    from drift.snapshot.watch import SourceWatch
    from drift.vocabulary import SourceKind
    from tests.audit_receiver import receiving, webhook
    from tests.faultproxy import cached_kubectl

    canary = f"canary-{uuid.uuid4().hex}"
    encoded = base64.b64encode(canary.encode()).decode()
    hook = webhook()
    cluster, _ = register_cluster(hook.cluster_name, str(kubeconfig), audit_token=hook.token)
    stop = threading.Event()
    as_dave = [cached_kubectl(), "--kubeconfig", str(kubeconfig), "--as", "dave@example.com", "--as-group",
               "system:masters", "-n", kube.namespace]  # fmt: skip
    with caplog.at_level(logging.DEBUG, logger="drift"), receiving(hook.port):
        watcher = SourceWatch(cluster.pk, SourceKind.SECRET, stop, stall_seconds=5)
        threading.Thread(target=watcher.run, daemon=True).start()
        try:
            wait_until(lambda: watcher.counts.get("watches"), timeout=60, what="the watch")
            subprocess.run([*as_dave, "create", "secret", "generic", "canary", f"--from-literal=token={canary}"],
                           check=True, capture_output=True)  # fmt: skip
            patch = f'{{"stringData":{{"token":"{canary}-rotated"}}}}'
            subprocess.run([*as_dave, "patch", "secret", "canary", "-p", patch], check=True, capture_output=True)
            wait_until(
                lambda: list(
                    SourceVersion.objects.filter(source__name="canary").order_by("first_seen").values_list(
                        "changed_by", flat=True
                    )
                ) == ["dave@example.com", "dave@example.com"],
                timeout=30, what="both versions with their author",
            )  # fmt: skip
        finally:
            stop.set()
    assert KubeAuditEvent.objects.filter(name="canary", kind="Secret").count() == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_AUTHOR, actor="dave@example.com").exists()
    dump = database_dump()
    assert "dave@example.com" in dump, "the dump covers the test database"
    for needle in (canary, encoded):
        assert needle not in dump
        assert needle not in caplog.text
