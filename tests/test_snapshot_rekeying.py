"""Rotating the hash key: the next snapshot recognises unchanged content through the previous key, so no
source gets a new version, no audit entry says anything changed, and no consumer's verdict moves."""

import pytest

from drift.clusters import register_cluster
from drift.hashing import ValueHasher, current_hasher, previous_hashers
from drift.models import AuditEvent, Observation, SnapshotRun, SourceVersion
from drift.snapshot import snapshot
from drift.verdicts import drift_rows
from tests.kube_helpers import deployment


def test_a_dedicated_key_replaces_the_one_derived_from_secret_key(settings):
    settings.DRIFTWATCH_HASH_KEY = ""
    settings.DRIFTWATCH_HASH_KEYS_PREVIOUS = []
    derived = current_hasher()
    assert derived.key_id == ValueHasher(settings.SECRET_KEY).key_id
    assert previous_hashers() == {}

    settings.DRIFTWATCH_HASH_KEY = "a-dedicated-hash-key"
    settings.DRIFTWATCH_HASH_KEYS_PREVIOUS = ["an-older-key"]
    assert current_hasher().key_id != derived.key_id
    assert set(previous_hashers()) == {derived.key_id, ValueHasher("an-older-key").key_id}, (
        "the key derived from SECRET_KEY was the default: it is a previous key without being listed"
    )


def test_a_key_id_names_a_key_without_revealing_it():
    hasher = ValueHasher("a-dedicated-hash-key")
    assert len(hasher.key_id) == 12
    assert hasher.key_id == ValueHasher("a-dedicated-hash-key").key_id
    assert "a-dedicated-hash-key" not in repr(hasher)


def verdicts(cluster, namespace):
    return sorted(
        (row.workload.name, row.mode, row.source.name, row.verdict, row.evidence, str(row.stale_since))
        for row in drift_rows(cluster, namespace=namespace)
        if row.source.name != "kube-root-ca.crt"
    )


@pytest.mark.cluster
@pytest.mark.django_db
def test_rotating_the_hash_key_changes_no_version_no_verdict_and_no_audit(kubeconfig, kube, settings):
    settings.DRIFTWATCH_HASH_KEY = ""
    settings.DRIFTWATCH_HASH_KEYS_PREVIOUS = []
    kube.config_map("env-config", {"log_level": "INFO", "mode": "a"})
    kube.secret("app-secret", {"token": "t-1"})
    container = {
        "name": "app",
        "image": "nginx:1.27",
        "envFrom": [{"configMapRef": {"name": "env-config"}}],
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "token"}}}],
    }
    kube.create_deployment(deployment("env-demo", [container]))
    kube.wait_deployment_ready("env-demo")
    [pod] = kube.ready_pods("env-demo")
    kube.wait_exec_ready(pod.metadata.name)
    cluster, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    kube.edit_config_map("env-config", {"log_level": "DEBUG", "mode": "a"})  # env-demo now runs a stale env
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    before = verdicts(cluster, kube.namespace)
    assert ("env-demo", "envFrom", "env-config", "stale", "observed") in [row[:5] for row in before]
    assert ("env-demo", "env", "app-secret", "fresh", "observed") in [row[:5] for row in before]
    # Other tests' namespaces may come and go meanwhile: count what concerns this one.
    versions = SourceVersion.objects.filter(source__namespace=kube.namespace)
    audits = AuditEvent.objects.filter(namespace=kube.namespace)
    version_count, audit_count = versions.count(), audits.count()
    old_key = current_hasher().key_id

    # Rotate: a dedicated key; the one derived from SECRET_KEY becomes the previous key.
    settings.DRIFTWATCH_HASH_KEY = "the-first-dedicated-hash-key"
    new_key = current_hasher().key_id
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    assert versions.count() == version_count, "no new version"
    assert audits.count() == audit_count, "the audit log says nothing changed"
    assert verdicts(cluster, kube.namespace) == before, "no consumer turns stale, none turns fresh"
    assert set(SourceVersion.objects.values_list("hash_key_id", flat=True)) == {new_key}
    assert set(Observation.objects.exclude(key_hashes={}).values_list("hash_key_id", flat=True)) == {new_key}

    # Rotate again, listing the previous dedicated key; a change after it is seen as one.
    settings.DRIFTWATCH_HASH_KEYS_PREVIOUS = ["the-first-dedicated-hash-key"]
    settings.DRIFTWATCH_HASH_KEY = "the-second-dedicated-hash-key"
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    assert (versions.count(), audits.count()) == (version_count, audit_count)
    assert verdicts(cluster, kube.namespace) == before
    kube.edit_secret("app-secret", {"token": "t-2"})
    assert snapshot(cluster).status == SnapshotRun.Status.SUCCEEDED
    change = audits.get(action="config.changed", object_name="app-secret")
    assert change.detail["changed"] == ["token"], "only the key that changed, as before any rotation"
    assert old_key != new_key
