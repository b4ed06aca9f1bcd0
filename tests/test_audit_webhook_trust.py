"""The audit webhook judges each event on its own: a cluster user controls parts of an event (its Audit-ID, its
fieldManager, the X-Forwarded-For the API server turns into sourceIPs), and none of that may erase or forge
someone else's authorship, or turn into a 500 or an unbounded row."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from drift.clusters import audit_token_hash
from drift.models import AuditEvent, AuditWebhookRejection, Cluster, KubeAuditEvent
from tests.facts import user
from tests.test_kube_audit import batch, event

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]

TOKEN = "a-test-token-of-some-length-Q7v2"


@pytest.fixture
def local() -> Cluster:
    return Cluster.objects.create(
        name="local", kubeconfig_path="/nonexistent", audit_token_hash=audit_token_hash(TOKEN)
    )


def send(client: Client, body: Any) -> Any:
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/kubernetes-audit/local", raw, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {TOKEN}")  # fmt: skip


def refusals() -> dict[str, int]:
    return dict(AuditWebhookRejection.objects.filter(cluster_name="local").values_list("reason", "count"))


def test_an_over_long_audit_id_is_refused_alone_and_the_good_event_beside_it_is_kept(client, local):
    response = send(client, batch(event("x" * 80), event("good-1")))
    assert response.status_code == 200, response.content
    assert response.json()["stored"] == 1 and response.json()["refused"] == 1
    assert list(KubeAuditEvent.objects.values_list("audit_id", flat=True)) == ["good-1"]
    assert refusals() == {"event auditID": 1}


def test_a_reused_audit_id_does_not_drop_a_different_write(client, local):
    assert send(client, batch(event("same-id"))).status_code == 200
    later = event("same-id")
    later["requestReceivedTimestamp"] = "2026-11-29T10:05:00.100000Z"
    later["stageTimestamp"] = "2026-11-29T10:05:00.140000Z"
    later["user"] = {"username": "bob@example.com"}
    response = send(client, batch(later))
    assert (response.status_code, response.json()["stored"]) == (200, 1)
    assert sorted(KubeAuditEvent.objects.values_list("username", flat=True)) == ["alice@example.com", "bob@example.com"]


def test_the_same_event_twice_is_stored_once_and_a_resent_batch_is_409(client, local):
    response = send(client, batch(event("a"), event("a")))
    assert (response.status_code, response.json()["stored"]) == (200, 1)
    assert send(client, batch(event("a"))).status_code == 409
    assert KubeAuditEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [' + "[" * 100_000 + "]" * 100_000 + "]}",
         "nested"),
        (batch({**event(), "stageTimestamp": "9999-12-31T23:59:59.999999Z",
                "requestReceivedTimestamp": "9999-12-31T23:59:59.000000Z"}), "time"),
        (batch({**event(), "stageTimestamp": "0001-01-01T00:00:00Z"}), "time"),
        (batch({**event(), "annotations": {"a": {"b": json.loads("[" * 40 + "1" + "]" * 40)}}}), None),
    ],
    ids=["deeply-nested", "year-9999", "year-1", "nested-annotation"],
)  # fmt: skip
def test_hostile_bodies_are_a_400_not_a_500(client, local, body, said):
    response = send(client, body)
    if said is None:  # deep but harmless where we never read: kept
        assert response.status_code == 200
        return
    assert response.status_code == 400, response.content
    assert said in response.json()["error"]


def test_source_ips_keep_the_last_addresses_and_label_the_rest_claimed(client, local):
    forged = event("ips", code=403)
    forged["sourceIPs"] = [f"10.0.{i // 250}.{i % 250}" for i in range(100_000)] + ["192.0.2.7"]
    response = send(client, batch(forged))
    assert response.status_code == 200
    row = KubeAuditEvent.objects.get()
    assert row.source_ips[-1] == "192.0.2.7" and len(row.source_ips) <= 3
    assert row.claimed_source_ips_count == 100_000 - len(row.source_ips) + 1
    attempt = AuditEvent.objects.get(action=AuditEvent.Action.CONFIG_ATTEMPT)
    assert len(json.dumps(attempt.detail)) < 4_000
    assert attempt.detail["source_ips"][-1] == "192.0.2.7"
    assert attempt.detail["claimed_source_ips"] == row.claimed_source_ips_count


def test_refused_events_are_shown_on_the_clusters_section_and_in_metrics(client, local):
    send(client, batch(event("x" * 80), event("fine")))
    send(client, batch({**event("later"), "stageTimestamp": "9999-12-31T23:59:59Z"}))
    families = {f.name: f.samples for f in text_string_to_metric_families(client.get("/metrics").content.decode())}
    samples = {
        (s.labels["cluster"], s.labels["reason"]): s.value
        for s in families["driftwatch_audit_events_refused"]
        if s.name == "driftwatch_audit_events_refused_total"
    }
    assert samples[("local", "event auditID")] == 1
    assert samples[("local", "event time")] == 1
    client.force_login(user("vera", "viewer"))
    page = client.get(reverse("overview")).content.decode()
    assert "Audit webhook refused 2 events" in page
    assert "event auditID: 1" in page


def test_a_flood_of_refused_writes_from_one_identity_grows_nothing_without_bound(client, local, settings):
    for round_ in range(30):
        items = []
        for i in range(50):
            raw = event(f"r{round_}-{i}", code=403)
            raw["user"] = {"username": "system:serviceaccount:web:default"}
            items.append(raw)
        assert send(client, batch(*items)).status_code == 200
    attempts = AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_ATTEMPT).count()
    assert 0 < attempts <= settings.DRIFTWATCH_ATTEMPT_ENTRIES_PER_HOUR
    assert KubeAuditEvent.objects.count() <= settings.DRIFTWATCH_ATTEMPT_ENTRIES_PER_HOUR


def test_stored_audit_events_older_than_the_retention_are_pruned(local):
    from django.utils import timezone

    from drift.audit_webhook import prune_kube_audit_events

    old = timezone.now() - timedelta(days=400)
    for number, when in enumerate([old, timezone.now()]):
        KubeAuditEvent.objects.create(
            cluster=local, audit_id=f"id{number}", digest=f"d{number}", verb="patch", kind="ConfigMap",
            namespace="demo", name="app", username="alice", status_code=200, request_received_at=when,
            completed_at=when, arrived_at=when,
        )  # fmt: skip
    from drift.models import RefusedAttempt, Source, SourceVersion

    source = Source.objects.create(cluster=local, kind="ConfigMap", namespace="demo", name="app", uid="u1",
                                   first_seen=old)  # fmt: skip
    version = SourceVersion.objects.create(source=source, resource_version="1", content_hash="h", first_seen=old)
    KubeAuditEvent.objects.create(
        cluster=local, audit_id="joined", digest="dj", verb="patch", kind="ConfigMap", namespace="demo", name="app",
        username="alice", status_code=200, request_received_at=old, completed_at=old, arrived_at=old, version=version,
    )  # fmt: skip
    RefusedAttempt.objects.create(action="access.csrf_failed", hour=old, count=5)
    RefusedAttempt.objects.create(action="access.csrf_failed", hour=timezone.now(), count=1)
    assert prune_kube_audit_events(90) == 1
    # The new one stays, and the old one joined to a version still kept stays with it.
    assert sorted(KubeAuditEvent.objects.values_list("audit_id", flat=True)) == ["id1", "joined"]
    assert RefusedAttempt.objects.count() == 1
