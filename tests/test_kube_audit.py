"""Who changed it: the local API server sends its audit events to Driftwatch's webhook (scripts/cluster), the
watcher records each version, and the two are joined. Bad batches are refused and change nothing."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from drift.clusters import register_cluster
from drift.models import AuditEvent, AuditWebhookRejection, Cluster, KubeAuditEvent, SourceVersion
from drift.snapshot.watch import SourceWatch
from drift.vocabulary import SourceKind
from tests.audit_receiver import receiving, webhook
from tests.faultproxy import cached_kubectl
from tests.kube_helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
API_SERVER_LOG = ROOT / ".cluster" / "kwok" / "clusters" / "driftwatch" / "logs" / "kube-apiserver.log"


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([cached_kubectl(), "--kubeconfig", str(kubeconfig), *args], check=check, capture_output=True)


def versions(namespace: str, name: str) -> list[SourceVersion]:
    return list(
        SourceVersion.objects.filter(source__namespace=namespace, source__name=name).order_by("first_seen", "id")
    )


def dropped_batches() -> list[str]:
    """The API server's log lines for audit batches it gave up delivering (after its retries)."""
    if not API_SERVER_LOG.exists():
        return []
    return [line for line in API_SERVER_LOG.read_text(errors="replace").splitlines() if "Error in audit plugin" in line]


def author_missing(namespace: str, name: str, who: str, dropped: list[str]) -> str:
    """What is known when an author did not come: the version, the events stored for the object, and the API
    server's own word on batches it dropped meanwhile."""
    latest = versions(namespace, name)[-1]
    events = KubeAuditEvent.objects.filter(namespace=namespace, name=name).order_by("completed_at")
    said = [
        f"{event.verb} {event.status_code} {event.impersonated_user or event.username} "
        f"received {event.request_received_at.isoformat()} completed {event.completed_at.isoformat()} "
        f"joined to {event.version_id}"
        for event in events
    ]
    return (
        f"no author {who} on rv {latest.resource_version} (modified_at {latest.modified_at}, changed_by "
        f"{latest.changed_by!r}, confidence {latest.author_confidence!r}); events stored for the object: {said}; "
        f"batches the API server dropped meanwhile: {dropped or 'none'}"
    )


def watch_in_thread(cluster: Cluster, kind: SourceKind, stop: threading.Event) -> SourceWatch:
    watcher = SourceWatch(cluster.pk, kind, stop, stall_seconds=5)
    threading.Thread(target=watcher.run, daemon=True).start()
    wait_until(lambda: watcher.counts.get("watches"), timeout=60, what="the watch")
    return watcher


class Lost(Exception):
    """The API server never delivered a write's audit event (nothing of it stored): outside Driftwatch."""


def edit_as_alice_then_bob(kubeconfig: Path, kube: Any, namespace: str, name: str) -> tuple[list[float], list[float]]:
    """Create NAME, then patch it as alice and as bob, each author awaited; then carol's refused create."""
    kube.config_map(name, {"log_level": "INFO"})
    wait_until(lambda: len(versions(namespace, name)) == 1, timeout=30)
    version_delays, author_delays = [], []
    for who, level in (("alice@example.com", "DEBUG"), ("bob@example.com", "WARN")):
        dropped_before = dropped_batches()
        kubectl(kubeconfig, "--as", who, "--as-group", "system:masters", "-n", namespace, "patch",
                "configmap", name, "--type", "merge", "-p", f'{{"data":{{"log_level":"{level}"}}}}')  # fmt: skip
        returned = time.monotonic()
        wait_until(lambda lvl=level: versions(namespace, name)[-1].data.get("log_level") == lvl,
                   timeout=30, interval=0.05)  # fmt: skip
        version_delays.append(time.monotonic() - returned)
        # Usually under 1.5 s. Twice in fresh-clone runs of the whole suite: over 30 s, then never in 90 s, with
        # nothing refused or failed on our side (cause not found). The API server retries a batch for up to ~80 s
        # of backoff, then drops it: wait past that. An event that arrived and was not joined fails at once.
        try:
            wait_until(lambda w=who: versions(namespace, name)[-1].changed_by == w, timeout=150, interval=0.05)
        except AssertionError:
            said = author_missing(namespace, name, who, dropped_batches()[len(dropped_before) :])
            if KubeAuditEvent.objects.filter(namespace=namespace, name=name, impersonated_user=who).exists():
                raise AssertionError(said) from None
            raise Lost(said) from None
        author_delays.append(time.monotonic() - returned)
        time.sleep(1)
    # An attempt the API server refused (409: it exists already) is kept as an attempt, not a version.
    refused = kubectl(kubeconfig, "--as", "carol@example.com", "--as-group", "system:masters", "-n", namespace,
                      "create", "configmap", name, "--from-literal=log_level=ERROR", check=False)  # fmt: skip
    assert refused.returncode != 0
    wait_until(lambda: KubeAuditEvent.objects.filter(status_code=409, name=name).exists(), timeout=30, what="the 409")
    return version_delays, author_delays


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_kubectl_as_alice_names_alice_on_the_version_and_in_the_audit_log(kubeconfig, kube, namespace, plain_http):
    hook = webhook()
    cluster, _ = register_cluster(hook.cluster_name, str(kubeconfig), audit_token=hook.token)
    stop = threading.Event()
    name = "app"
    with receiving(hook.port):
        watch_in_thread(cluster, SourceKind.CONFIG_MAP, stop)
        try:
            try:
                version_delays, author_delays = edit_as_alice_then_bob(kubeconfig, kube, namespace, name)
            except Lost as lost:
                # Once, on another object, so that a delivery the API server dropped does not fail the join under
                # test; kept in the artifacts (and a second loss fails).
                ARTIFACTS.mkdir(exist_ok=True)
                with (ARTIFACTS / "audit-delays.txt").open("a") as out:
                    out.write(f"lost {lost}\n")
                warnings.warn(f"an audit event was never delivered; once more on another object: {lost}", stacklevel=1)
                name = "app-again"
                version_delays, author_delays = edit_as_alice_then_bob(kubeconfig, kube, namespace, name)
        finally:
            stop.set()
    found = versions(namespace, name)
    assert [v.data["log_level"] for v in found] == ["INFO", "DEBUG", "WARN"]
    assert [(v.changed_by, v.client) for v in found[1:]] == [
        ("alice@example.com", "kubectl-patch"),
        ("bob@example.com", "kubectl-patch"),
    ]
    assert found[1].author_confidence in ("likely", "confirmed")
    joined = KubeAuditEvent.objects.get(version=found[1])
    assert joined.impersonated_user == "alice@example.com" and joined.username != "alice@example.com"
    assert "system:masters" in joined.impersonated_groups
    assert joined.user_agent.startswith("kubectl") and joined.source_ips
    authored = AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_AUTHOR, object_name=name).order_by("id")
    # The first version was created by the test itself (the cluster's admin, through the Python client).
    assert [(entry.actor, entry.detail["client"]) for entry in authored] == [
        (found[0].changed_by, found[0].client),
        ("alice@example.com", "kubectl-patch"),
        ("bob@example.com", "kubectl-patch"),
    ]
    attempt = AuditEvent.objects.get(action=AuditEvent.Action.CONFIG_ATTEMPT, object_name=name)
    assert attempt.actor == "carol@example.com" and attempt.detail["status_code"] == 409
    assert len(found) == 3
    out = io.StringIO()
    call_command("history", "--cluster", hook.cluster_name, "-n", namespace, f"configmap/{name}", "--json", stdout=out)
    printed = json.loads(out.getvalue())
    assert [(item["version"], item["changed_by"], item["client"]) for item in printed[1:]] == [
        (2, "alice@example.com", "kubectl-patch"),
        (3, "bob@example.com", "kubectl-patch"),
    ]
    assert printed[1]["changed_keys"] == {"added": [], "removed": [], "changed": ["log_level"]}
    assert printed[1]["resource_version"] == found[1].resource_version
    assert set(printed[0]) == {"version", "resource_version", "first_seen", "changed_at", "changed_by", "client",
                               "changed_keys"}  # fmt: skip
    out = io.StringIO()
    call_command("history", "--cluster", hook.cluster_name, "-n", namespace, f"configmap/{name}", stdout=out)
    assert "#2 rv" in out.getvalue() and "by alice@example.com via kubectl-patch" in out.getvalue()
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "audit-delays.txt").open("a") as out:
        out.write(
            "version " + " ".join(f"{d:.3f}" for d in version_delays)
            + " author " + " ".join(f"{d:.3f}" for d in author_delays) + "\n"
        )  # fmt: skip


def batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": list(events)}


def event(audit_id: str = "0b4f7e39-0000-4000-8000-000000000001", code: int = 200) -> dict[str, Any]:
    return {
        "level": "Metadata", "auditID": audit_id, "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/demo/configmaps/app?fieldManager=kubectl-patch", "verb": "patch",
        "user": {"username": "alice@example.com", "groups": ["dev"]}, "sourceIPs": ["127.0.0.1"],
        "userAgent": "kubectl/v1.34.4", "responseStatus": {"code": code},
        "objectRef": {"resource": "configmaps", "namespace": "demo", "name": "app", "apiVersion": "v1"},
        "requestReceivedTimestamp": "2026-11-29T10:02:00.100000Z", "stageTimestamp": "2026-11-29T10:02:00.140000Z",
    }  # fmt: skip


TOKEN = "a-test-token-of-some-length"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "reason"),
    [
        ("/kubernetes-audit/local", {}, batch(event()), 401, "unauthenticated"),
        ("/kubernetes-audit/local", {"HTTP_AUTHORIZATION": "Bearer wrong-token-xxxxxxxx"}, batch(event()), 401,
         "unauthenticated"),
        ("/kubernetes-audit/other", {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, batch(event()), 401, "unauthenticated"),
        ("/kubernetes-audit/local", {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, "{not json", 400, "malformed"),
        ("/kubernetes-audit/local", {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, {"kind": "Pod"}, 400, "malformed"),
        # Each event is judged on its own (a good one beside it is kept: tests/test_audit_webhook_trust.py); a batch
        # with no readable event is a 400.
        ("/kubernetes-audit/local", {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, batch({"auditID": 5}), 400,
         "event malformed"),
        ("/kubernetes-audit/local", {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, batch(*[event(f"id-{i}") for i in range(30)]),
         413, "oversized"),
    ],
)  # fmt: skip
def test_bad_batches_are_refused_counted_and_store_nothing(client, settings, path, headers, body, status, reason):
    settings.SECURE_SSL_REDIRECT = False
    settings.DRIFTWATCH_AUDIT_MAX_BYTES = 4096
    Cluster.objects.create(name="local", kubeconfig_path="/nonexistent", audit_token_hash=_hash(TOKEN))
    Cluster.objects.create(name="other", kubeconfig_path="/nonexistent")  # no token: accepts nothing
    entries = AuditEvent.objects.count()
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.post(path, raw, content_type="application/json", **headers)
    assert response.status_code == status
    assert "error" in response.json()
    assert KubeAuditEvent.objects.count() == 0
    assert AuditEvent.objects.count() == entries
    assert list(AuditWebhookRejection.objects.values_list("reason", "status_code", "count")) == [(reason, status, 1)]
    client.post(path, raw, content_type="application/json", **headers)
    assert AuditWebhookRejection.objects.get().count == 2  # a counter, not a row per refusal


@pytest.mark.django_db
def test_a_replayed_batch_is_refused_and_a_partly_new_one_stores_only_the_new_events(client, settings):
    settings.SECURE_SSL_REDIRECT = False
    Cluster.objects.create(name="local", kubeconfig_path="/nonexistent", audit_token_hash=_hash(TOKEN))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    first = client.post("/kubernetes-audit/local", batch(event("a"), event("b", 403)), content_type="application/json",
                        **headers)  # fmt: skip
    assert (first.status_code, first.json()["stored"]) == (200, 2)
    attempts = AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_ATTEMPT).count()
    assert attempts == 1
    again = client.post("/kubernetes-audit/local", batch(event("a"), event("b", 403)), content_type="application/json",
                        **headers)  # fmt: skip
    assert again.status_code == 409
    assert KubeAuditEvent.objects.count() == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_ATTEMPT).count() == attempts
    assert list(AuditWebhookRejection.objects.values_list("cluster_name", "reason", "count")) == [
        ("local", "replayed", 1)
    ]
    partly = client.post("/kubernetes-audit/local", batch(event("b", 403), event("c")), content_type="application/json",
                         **headers)  # fmt: skip
    assert (partly.status_code, partly.json()["stored"]) == (200, 1)
    assert KubeAuditEvent.objects.count() == 3
    # GET never changes anything
    assert client.get("/kubernetes-audit/local", **headers).status_code == 405


def _hash(token: str) -> str:
    from drift.clusters import audit_token_hash

    return audit_token_hash(token)
