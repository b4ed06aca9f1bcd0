"""The checks `make chaos` prints (bench/chaos_checks.py), run on rows written to fail them, so that the chaos
table's zeros mean something: a version the API server answered but nobody stored, a version stored twice,
an audit entry written twice, a rollout sent twice or lost."""

import sys
import uuid
from pathlib import Path

import pytest

from drift import audit
from drift.models import AuditEvent, Cluster, Rollout, Source, SourceVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import chaos_checks  # bench/ is no package: found through the path above

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    return Cluster.objects.create(name="chaos-checks", kubeconfig_path="/nonexistent")


def version(cluster, name, resource_version, uid=None):
    source, _ = Source.objects.get_or_create(
        cluster=cluster, uid=uid or f"uid-{name}", defaults={"kind": "ConfigMap", "namespace": "ns", "name": name}
    )
    return SourceVersion.objects.create(source=source, content_hash=resource_version, resource_version=resource_version)


def test_every_answered_version_stored_is_nothing_missing_and_nothing_twice(cluster):
    for name, resource_version in [("a", "10"), ("b", "11"), ("a", "12")]:
        version(cluster, name, resource_version)
    stored = chaos_checks.stored_versions("chaos-checks", "ns")
    assert sorted(stored) == [("a", "10"), ("a", "12"), ("b", "11")]
    assert chaos_checks.missing_versions([("a", "10"), ("a", "12"), ("b", "11")], stored) == []
    assert chaos_checks.duplicate_versions(stored) == []


def test_a_version_the_api_server_answered_but_nobody_stored_is_missing(cluster):
    version(cluster, "a", "10")
    version(cluster, "b", "11", uid="other-namespace-b")
    Source.objects.filter(uid="other-namespace-b").update(namespace="elsewhere")
    stored = chaos_checks.stored_versions("chaos-checks", "ns")
    assert chaos_checks.missing_versions([("a", "10"), ("a", "13"), ("b", "11")], stored) == [("a", "13"), ("b", "11")]


def test_a_version_stored_twice_is_a_duplicate(cluster):
    version(cluster, "a", "10")
    version(cluster, "a", "10")
    version(cluster, "a", "12")
    assert chaos_checks.duplicate_versions(chaos_checks.stored_versions("chaos-checks", "ns")) == [("a", "10")]


def config_changed(resource_version, name="a"):
    audit.record(
        "driftwatch", AuditEvent.Action.CONFIG_CHANGED, f"ConfigMap ns/{name} changed", cluster_name="chaos-checks",
        namespace="ns", object_kind="ConfigMap", object_name=name, detail={"resource_version": resource_version},
    )  # fmt: skip


def rollout_audit(action, rollout_id):
    audit.record(
        "chaos", action, "rollout", cluster_name="chaos-checks", namespace="ns", object_kind="Deployment",
        object_name="d", detail={"rollout": rollout_id},
    )  # fmt: skip


def test_audit_entries_written_twice_are_found_and_distinct_ones_are_not(cluster):
    config_changed("10")
    config_changed("11")
    config_changed("10", name="b")
    rollout_audit(AuditEvent.Action.ROLLOUT_REQUESTED, 1)
    rollout_audit(AuditEvent.Action.ROLLOUT_COMPLETED, 1)
    rollout_audit(AuditEvent.Action.ROLLOUT_REQUESTED, 2)
    assert chaos_checks.duplicate_audit_entries("chaos-checks") == []

    config_changed("11")
    rollout_audit(AuditEvent.Action.ROLLOUT_REQUESTED, 2)
    rollout_audit(AuditEvent.Action.ROLLOUT_FAILED, 1)  # a second end of rollout 1
    assert chaos_checks.duplicate_audit_entries("chaos-checks") == [
        "config.changed ConfigMap ns/a rv=11 x2",
        "rollout 2: request recorded x2",
        "rollout 1: end recorded x2",
    ]


def test_a_generation_that_moved_more_or_less_than_the_recorded_rollouts_is_a_rollout_twice_or_lost(cluster):
    batch = uuid.uuid4()
    for name, generation in [("d1", 2), ("d2", 2), ("d2", 3), ("d3", 2)]:
        Rollout.objects.create(
            cluster=cluster, kind="Deployment", namespace="ns", name=name, requested_by="chaos", status="complete",
            generation=generation, batch=batch,
        )  # fmt: skip
    Rollout.objects.create(
        cluster=cluster, kind="Deployment", namespace="ns", name="d4", requested_by="chaos", status="noop", batch=batch
    )
    applied = chaos_checks.applied_rollouts("chaos-checks", "ns")
    assert applied == {"d1": 1, "d2": 2, "d3": 1}
    assert chaos_checks.rollout_mismatches(applied, {"d1": 1, "d2": 2, "d3": 1, "d4": 0}) == ([], [])
    twice, lost = chaos_checks.rollout_mismatches(applied, {"d1": 2, "d2": 1, "d3": 1, "d4": 1})
    assert twice == [
        "deployment/d1: generation moved 2x, 1 rollout(s) recorded",
        "deployment/d4: generation moved 1x, 0 rollout(s) recorded",
    ]
    assert lost == ["deployment/d2: 2 rollout(s) recorded, generation moved 1x"]
    assert chaos_checks.unfinished_rollouts(str(batch)) == []
    Rollout.objects.create(
        cluster=cluster, kind="Deployment", namespace="ns", name="d5", requested_by="chaos", status="patching",
        batch=batch,
    )  # fmt: skip
    assert chaos_checks.unfinished_rollouts(str(batch)) == ["Deployment/d5 -n ns patching"]
