"""On the real stack: a cluster user sets the `Audit-ID` header the API server copies into its audit event. One
over-long ID must not cost anyone else's authorship (the API server sends both writes in one batch), and a reused
ID must not drop the writer's own second write."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from drift.clusters import register_cluster
from drift.models import AuditWebhookRejection, KubeAuditEvent, SourceVersion
from drift.vocabulary import SourceKind
from tests.audit_receiver import receiving, webhook
from tests.kube_helpers import wait_until
from tests.test_kube_audit import watch_in_thread


def as_user(kubeconfig: Path, user: str, audit_id: str = "") -> k8s.CoreV1Api:
    """A client that impersonates `user` and, when given, sends its own Audit-ID header."""
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    api.set_default_header("Impersonate-User", user)
    api.set_default_header("Impersonate-Group", "system:masters")
    if audit_id:
        api.set_default_header("Audit-ID", audit_id)
    return k8s.CoreV1Api(api)


def patch(api: k8s.CoreV1Api, namespace: str, name: str, level: str) -> None:
    api.patch_namespaced_config_map(name, namespace, {"data": {"log_level": level}}, field_manager="kubectl-patch")


def latest(namespace: str, name: str) -> SourceVersion | None:
    return (
        SourceVersion.objects.filter(source__namespace=namespace, source__name=name).order_by("first_seen", "id").last()
    )


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_a_forged_or_reused_audit_id_costs_no_one_their_authorship(kubeconfig, kube, namespace, plain_http):
    hook = webhook()
    cluster, _ = register_cluster(hook.cluster_name, str(kubeconfig), audit_token=hook.token)
    stop = threading.Event()
    with receiving(hook.port):
        watch_in_thread(cluster, SourceKind.CONFIG_MAP, stop)
        try:
            kube.config_map("app", {"log_level": "INFO"})
            kube.config_map("other", {"log_level": "INFO"})
            wait_until(lambda: latest(namespace, "other") is not None, timeout=30)
            time.sleep(1.1)
            # Mallory's write with an 80-character Audit-ID and Alice's write leave in the same batch (max wait 1 s).
            patch(as_user(kubeconfig, "mallory@example.com", "m" * 80), namespace, "other", "DEBUG")
            patch(as_user(kubeconfig, "alice@example.com"), namespace, "app", "DEBUG")
            wait_until(lambda: latest(namespace, "app").changed_by == "alice@example.com", timeout=60, interval=0.1,
                       what="alice named on her version")  # fmt: skip
            wait_until(
                lambda: AuditWebhookRejection.objects.filter(cluster_name=cluster.name, reason="event auditID").exists(),
                timeout=30, what="the over-long auditID counted",
            )  # fmt: skip
            # Eve writes twice with one Audit-ID: both writes are hers.
            eve = as_user(kubeconfig, "eve@example.com", "reused-audit-id")
            time.sleep(1.1)
            patch(eve, namespace, "app", "WARN")
            wait_until(lambda: latest(namespace, "app").changed_by == "eve@example.com", timeout=60, interval=0.1)
            time.sleep(1.1)
            patch(eve, namespace, "app", "ERROR")
            wait_until(
                lambda: (latest(namespace, "app").data.get("log_level"), latest(namespace, "app").changed_by)
                == ("ERROR", "eve@example.com"),
                timeout=60, interval=0.1, what="eve's second write named",
            )  # fmt: skip
        finally:
            stop.set()
    assert KubeAuditEvent.objects.filter(cluster=cluster, audit_id="reused-audit-id").count() == 2
    assert latest(namespace, "other").changed_by == ""  # mallory's event was refused: no person, never a wrong one
