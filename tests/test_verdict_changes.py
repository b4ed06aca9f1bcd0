"""Verdict changes are appended as they happen (drift.verdicts.store): one row per consumption whose verdict
changed, with the verdict before and after; a re-judgement that changes nothing appends nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction

from drift import verdicts
from drift.models import Pod, SourceVersion, VerdictChange
from tests.facts import Facts, value_hash

pytestmark = pytest.mark.django_db


def changes() -> list[tuple[str, str, str]]:
    return list(VerdictChange.objects.order_by("at", "pk").values_list("pod__name", "old_verdict", "new_verdict"))


def test_each_change_of_a_verdict_is_appended_once_and_nothing_else():
    facts = Facts.for_cluster()
    source = facts.source("env-config", (90, {"level": "INFO"}))
    facts.pod("env-demo", "env-a", [{"source_name": "env-config"}], started_minutes_ago=30)
    other = facts.pod("env-demo", "env-b", [{"source_name": "env-config"}], started_minutes_ago=30, namespace="shop")
    facts.run()
    verdicts.facts_changed(facts.cluster, facts.now)
    first = changes()
    assert sorted(first) == [("env-a", "", "fresh"), ("env-b", "", "missing")]  # shop has no env-config
    assert set(VerdictChange.objects.values_list("namespace", flat=True)) == {"demo", "shop"}

    verdicts.facts_changed(facts.cluster, facts.now + timedelta(seconds=5))  # nothing changed
    assert changes() == first

    SourceVersion.objects.create(
        source=source, content_hash=value_hash("debug"), resource_version="900", first_seen=facts.at(1),
        key_hashes={"level": value_hash("DEBUG")}, data={"level": "DEBUG"},
    )  # fmt: skip
    later = facts.now + timedelta(seconds=10)
    verdicts.facts_changed(facts.cluster, later)
    assert changes()[2:] == [("env-a", "fresh", "stale")]
    [stale] = VerdictChange.objects.filter(new_verdict="stale")
    assert stale.at == later

    Pod.objects.filter(pk=other.pk).update(deleted_at=later)
    verdicts.facts_changed(facts.cluster, later + timedelta(seconds=1))
    assert changes()[-1] == ("env-b", "missing", "")  # no longer judged: its pod ended
    assert VerdictChange.objects.filter(new_verdict="").get().namespace == "shop"


def test_a_verdict_change_cannot_be_rewritten():
    facts = Facts.for_cluster()
    facts.source("env-config", (90, {"level": "INFO"}))
    facts.pod("env-demo", "env-a", [{"source_name": "env-config"}], started_minutes_ago=30)
    facts.run()
    verdicts.facts_changed(facts.cluster, facts.now)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        VerdictChange.objects.update(new_verdict="stale")
    assert list(VerdictChange.objects.values_list("new_verdict", flat=True)) == ["fresh"]
    Pod.objects.all().delete()  # the cascades of a pod removed still work
    assert not VerdictChange.objects.exists()
