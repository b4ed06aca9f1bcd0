"""Old source versions are pruned, except each source's latest and any a running container may still hold;
the audit log is never pruned."""

from datetime import timedelta

import pytest

from drift.models import AuditEvent, ContainerInstance, SourceVersion
from drift.snapshot.retention import prune_versions
from tests.facts import Facts

pytestmark = pytest.mark.django_db
HISTORY = ((300, {"k": "1"}), (200, {"k": "2"}), (100, {"k": "3"}))


def versions(source) -> list[str]:
    return [version.data["k"] for version in SourceVersion.objects.filter(source=source).order_by("first_seen")]


def test_versions_are_pruned_after_the_retention_period_keeping_what_may_still_run():
    facts = Facts.for_cluster()
    unused = facts.source("unused", *HISTORY)
    deleted = facts.source("deleted", *HISTORY, deleted_minutes_ago=50)
    old_reader = facts.source("old-reader", *HISTORY)
    newer_reader = facts.source("newer-reader", *HISTORY)
    gone_reader = facts.source("gone-reader", *HISTORY)
    facts.pod("a", "a-1", [{"source_name": "old-reader"}], started_minutes_ago=250)
    facts.pod("b", "b-1", [{"source_name": "newer-reader"}], started_minutes_ago=150)
    ended = facts.pod("c", "c-1", [{"source_name": "gone-reader"}], started_minutes_ago=250)
    ContainerInstance.objects.filter(pod=ended).update(ended_at=facts.at(10), running=False)
    AuditEvent.objects.create(actor="driftwatch", action="config.changed", at=facts.at(60 * 24 * 30))
    audits = AuditEvent.objects.count()

    assert prune_versions(retention_days=1, now=facts.now) == 0, "nothing is older than the retention period"

    later = facts.now + timedelta(days=2)
    assert prune_versions(retention_days=1, now=later) == 2 + 2 + 0 + 1 + 2
    assert versions(unused) == ["3"], "the latest version always stays"
    assert versions(deleted) == ["3"], "a deleted source keeps its last version"
    assert versions(old_reader) == ["1", "2", "3"], "a container started before the first change may run any"
    assert versions(newer_reader) == ["2", "3"], "versions superseded before every running start go"
    assert versions(gone_reader) == ["3"], "an ended container holds nothing"
    assert AuditEvent.objects.count() == audits, "the audit log is never pruned"


def test_a_running_container_without_a_start_time_keeps_every_version():
    facts = Facts.for_cluster()
    source = facts.source("pending-reader", *HISTORY)
    pod = facts.pod("a", "a-1", [{"source_name": "pending-reader"}])
    ContainerInstance.objects.filter(pod=pod).update(started_at=None)
    assert prune_versions(retention_days=1, now=facts.now + timedelta(days=2)) == 0
    assert versions(source) == ["1", "2", "3"]
