"""Who wrote a version: managedFields clients, audit events read and refused, the join. Pure tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drift.authorship import (
    Confidence,
    MalformedEvent,
    VersionFacts,
    client_label,
    content_writer,
    describe,
    join,
    read_event,
    read_event_list,
)

T0 = datetime(2026, 11, 29, 10, 2, 0, tzinfo=UTC)


def entry(manager: str, time: str | None, *fields: str, operation: str = "Update") -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "time": time,
        "fieldsV1": {name: {} for name in fields},
    }


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], None),
        # only labels: no content writer
        ([entry("kubectl-label", "2026-11-29T10:02:00Z", "f:metadata")], None),
        ([entry("kubectl-create", "2026-11-29T10:00:00Z", "f:data")], ("kubectl-create", T0 - timedelta(minutes=2))),
        # a later edit by another client takes over
        (
            [
                entry("kubectl-create", "2026-11-29T10:00:00Z", "f:data"),
                entry("kubectl-edit", "2026-11-29T10:02:00Z", "f:data"),
            ],
            ("kubectl-edit", T0),
        ),
        # a later metadata-only edit does not
        (
            [
                entry("helm", "2026-11-29T10:00:00Z", "f:data"),
                entry("kubectl-annotate", "2026-11-29T10:05:00Z", "f:metadata"),
            ],
            ("helm", T0 - timedelta(minutes=2)),
        ),
        # binaryData counts as content
        ([entry("argocd-controller", "2026-11-29T10:02:00Z", "f:binaryData")], ("argocd-controller", T0)),
        # the same second: the entry listed last (appended last)
        (
            [entry("a", "2026-11-29T10:02:00Z", "f:data"), entry("b", "2026-11-29T10:02:00Z", "f:data")],
            ("b", T0),
        ),
        # an entry without a time loses to one with a time
        (
            [entry("kubectl-patch", "2026-11-29T10:02:00Z", "f:data"), entry("odd", None, "f:data")],
            ("kubectl-patch", T0),
        ),
    ],
)
def test_content_writer(entries, expected):
    writer = content_writer({"managedFields": entries})
    if expected is None:
        assert writer is None
        assert client_label(writer) == ""
    else:
        assert (writer.manager, writer.at) == expected
        assert client_label(writer) == expected[0]


def event(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "level": "Metadata",
        "auditID": "a1",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/demo/configmaps/app?fieldManager=kubectl-patch",
        "verb": "patch",
        "user": {"username": "kubernetes-admin", "groups": ["system:masters"]},
        "impersonatedUser": {"username": "alice@example.com", "groups": ["dev"]},
        "sourceIPs": ["127.0.0.1"],
        "userAgent": "kubectl/v1.34.4",
        "objectRef": {"resource": "configmaps", "namespace": "demo", "name": "app", "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": "2026-11-29T10:02:00.100000Z",
        "stageTimestamp": "2026-11-29T10:02:00.140000Z",
    }
    for key, value in overrides.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "kept", "author"),
    [
        (event(), True, "alice@example.com"),
        (event(impersonatedUser=None), True, "kubernetes-admin"),
        (event(stage="RequestReceived"), False, ""),
        (event(verb="get"), False, ""),
        (event(objectRef={"resource": "pods", "namespace": "demo", "name": "p"}), False, ""),
        (event(objectRef={"resource": "configmaps", "apiGroup": "x.io", "name": "p"}), False, ""),
        # a body sent by a too-generous policy is never read
        (event(requestObject={"data": {"token": "canary"}}), True, "alice@example.com"),
    ],
)
def test_read_event_keeps_writes_to_configmaps_and_secrets(raw, kept, author):
    read = read_event(raw)
    assert (read is not None) == kept
    if read is not None:
        assert read.author == author
        assert read.field_manager == "kubectl-patch"
        assert "canary" not in repr(read)


@pytest.mark.parametrize(
    "raw",
    [
        "text",
        event(auditID=None),
        event(auditID="x" * 65),
        event(responseStatus={"code": "200"}),
        event(responseStatus=None),
        event(user="alice"),
        event(sourceIPs="127.0.0.1"),
        event(stageTimestamp="yesterday"),
        event(requestReceivedTimestamp=None),
    ],
)
def test_read_event_refuses_what_it_cannot_read(raw):
    with pytest.raises(MalformedEvent):
        read_event(raw)


@pytest.mark.parametrize(
    "document",
    [[], {"kind": "EventList"}, {"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1", "items": []},
     {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": {}}],
)  # fmt: skip
def test_read_event_list_refuses_other_documents(document):
    with pytest.raises(MalformedEvent):
        read_event_list(document)


def written(**overrides: Any):
    read = read_event(event(**overrides))
    assert read is not None
    return read


UPDATE_URI = "/api/v1/namespaces/demo/configmaps/app?fieldManager=kubectl-edit"


@pytest.mark.parametrize(
    ("version", "events", "confidence", "chosen"),
    [
        (VersionFacts(T0, "kubectl-patch"), [], Confidence.UNKNOWN, None),
        (VersionFacts(None, "kubectl-patch"), [written()], Confidence.UNKNOWN, None),
        (VersionFacts(T0, "kubectl-patch"), [written()], Confidence.LIKELY, "a1"),
        # a refused attempt, a dry run, a delete never produced a version
        (VersionFacts(T0, "kubectl-patch"), [written(responseStatus={"code": 409})], Confidence.UNKNOWN, None),
        (
            VersionFacts(T0, "kubectl-patch"),
            [written(requestURI="/api/v1/namespaces/demo/configmaps/app?dryRun=All&fieldManager=kubectl-patch")],
            Confidence.UNKNOWN,
            None,
        ),
        (VersionFacts(T0, "kubectl-patch"), [written(verb="delete")], Confidence.UNKNOWN, None),
        # outside the managedFields second
        (VersionFacts(T0 + timedelta(seconds=2), "kubectl-patch"), [written()], Confidence.UNKNOWN, None),
        # a write whose window spans into the next second still covers it
        (
            VersionFacts(T0 + timedelta(seconds=1), "kubectl-patch"),
            [written(stageTimestamp="2026-11-29T10:02:01.010000Z")],
            Confidence.LIKELY,
            "a1",
        ),
        # two writes in the second, the field manager tells them apart
        (
            VersionFacts(T0, "kubectl-edit"),
            [written(), written(auditID="a2", verb="update", requestURI=UPDATE_URI)],
            Confidence.LIKELY,
            "a2",
        ),
        # two writes by the same client in the second: ambiguous, the latest chosen
        (
            VersionFacts(T0, "kubectl-patch"),
            [written(stageTimestamp="2026-11-29T10:02:00.900000Z", auditID="late"), written()],
            Confidence.AMBIGUOUS,
            "late",
        ),
        # an update naming the version it replaced confirms the join
        (
            VersionFacts(T0, "kubectl-edit", previous_resource_version="41"),
            [
                written(
                    verb="update", requestURI=UPDATE_URI, objectRef={"resource": "configmaps", "resourceVersion": "41"}
                )
            ],
            Confidence.CONFIRMED,
            "a1",
        ),
        # an update of another lineage (other uid) is not this version's
        (
            VersionFacts(T0, "kubectl-edit", uid="u-new"),
            [written(verb="update", requestURI=UPDATE_URI, objectRef={"resource": "configmaps", "uid": "u-old"})],
            Confidence.UNKNOWN,
            None,
        ),
    ],
)
def test_join(version, events, confidence, chosen):
    result = join(version, events)
    assert result.confidence == confidence
    assert (result.chosen.audit_id if result.chosen else None) == chosen


@pytest.mark.parametrize(
    ("author", "client", "confidence", "said"),
    [
        ("alice@example.com", "kubectl-patch", Confidence.LIKELY, "alice@example.com via kubectl-patch"),
        ("alice@example.com", "kubectl-patch", Confidence.AMBIGUOUS, "alice@example.com via kubectl-patch (ambiguous)"),
        ("", "helm", Confidence.UNKNOWN, "helm (client; no person known)"),
        ("", "", "", "unknown"),
    ],
)
def test_describe(author, client, confidence, said):
    assert describe(author, client, confidence) == said


@pytest.mark.parametrize(
    ("author", "client", "said"),
    [
        # Any client may name itself anything (kubectl --field-manager): one Driftwatch does not know is
        # labelled as a client it does not recognise, never read as a person or as a known controller.
        ("", "alice@example.com", 'unrecognised client "alice@example.com" (no person known)'),
        ("bob@example.com", "alice@example.com", 'bob@example.com via unrecognised client "alice@example.com"'),
        ("", "argocd-controller", "argocd-controller (client; no person known)"),
        ("", "kubectl-edit", "kubectl-edit (client; no person known)"),
    ],
)
def test_a_field_manager_driftwatch_does_not_know_is_shown_as_an_unrecognised_client(author, client, said):
    assert describe(author, client, Confidence.LIKELY if author else Confidence.UNKNOWN) == said
