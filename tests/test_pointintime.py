"""Point in time over stored facts (drift.verdicts.read_at, driftreport --at): the pods that ran at T with the
version each ran and its verdict judged at T, "not known" where Driftwatch did not watch, and a bounded number
of queries however many pods there are."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from drift.models import ContainerInstance, Pod
from drift.verdicts import at as pit
from drift.verdicts.read_at import point_in_time
from tests.facts import Facts

pytestmark = pytest.mark.django_db


@pytest.fixture
def facts():
    """env-config: v1 (60 minutes ago), v2 (20 minutes ago). Snapshots every minute from 70 minutes ago.
    old-a started 50 minutes ago and runs v1; new-b started 15 minutes ago and runs v2; gone-c started 50
    minutes ago and was missed by the snapshot 12 minutes ago."""
    facts = Facts.for_cluster()
    for minutes in range(70, 0, -1):
        facts.run(minutes_ago=minutes - 0.5)
    facts.source("env-config", (60, {"log_level": "INFO"}), (20, {"log_level": "DEBUG"}))
    facts.old = facts.pod("env-demo", "old-a", [{"source_name": "env-config"}], started_minutes_ago=50)
    facts.new = facts.pod("env-demo", "new-b", [{"source_name": "env-config"}], started_minutes_ago=15)
    facts.gone = facts.pod("env-demo", "gone-c", [{"source_name": "env-config"}], started_minutes_ago=50)
    Pod.objects.filter(pk=facts.gone.pk).update(deleted_at=facts.at(11.5) + timedelta(seconds=1))
    ContainerInstance.objects.filter(pod=facts.gone).update(ended_at=facts.at(11.5) + timedelta(seconds=1))
    return facts


def by_uid(answer):
    return {row.pod_uid: row for row in answer.rows}


def test_at_three_moments_each_pod_runs_the_version_it_started_with(facts):
    before = by_uid(point_in_time(facts.cluster, facts.at(30), now=facts.now))
    after_edit = by_uid(point_in_time(facts.cluster, facts.at(18), now=facts.now))
    later = by_uid(point_in_time(facts.cluster, facts.at(5), now=facts.now))

    assert set(before) == {facts.old.uid, facts.gone.uid}
    assert [before[facts.old.uid].running.number, before[facts.old.uid].current.number] == [1, 1]
    assert before[facts.old.uid].row.verdict == "fresh"
    assert after_edit[facts.old.uid].row.verdict == "stale"
    assert after_edit[facts.old.uid].current.number == 2
    assert facts.new.uid not in after_edit  # started 15 minutes ago
    assert set(later) == {facts.old.uid, facts.new.uid}
    assert later[facts.new.uid].running.number == 2 and later[facts.new.uid].row.verdict == "fresh"


def test_a_pod_that_vanished_between_the_snapshots_around_t_is_not_known(facts):
    # The snapshot 11.5 minutes ago no longer listed gone-c; the one 12.5 minutes ago did.
    seen = by_uid(point_in_time(facts.cluster, facts.at(12.6), now=facts.now))[facts.gone.uid]
    between = by_uid(point_in_time(facts.cluster, facts.at(12), now=facts.now))[facts.gone.uid]

    assert seen.presence == pit.Presence.RAN and seen.row.verdict == "stale"
    assert between.presence == pit.Presence.NOT_KNOWN
    assert between.row.verdict == "unknown" and "not known whether this pod still ran" in between.row.reason
    assert facts.gone.uid not in by_uid(point_in_time(facts.cluster, facts.at(11), now=facts.now))


def test_before_the_first_snapshot_and_in_a_gap_it_says_not_known(facts):
    early = point_in_time(facts.cluster, facts.at(80), now=facts.now)
    facts.cluster.runs.filter(started_at__gt=facts.at(45), started_at__lt=facts.at(35)).delete()
    gap = point_in_time(facts.cluster, facts.at(40), now=facts.now)

    assert not early.known and early.rows == [] and "did not watch this cluster yet" in early.coverage.reason
    assert not gap.known and gap.rows == [] and "no good snapshot between" in gap.coverage.reason


def test_the_queries_do_not_grow_with_the_pods(facts, django_assert_max_num_queries):
    for number in range(60):
        facts.pod("many", f"many-{number}", [{"source_name": "env-config"}], started_minutes_ago=40)

    with django_assert_max_num_queries(8):
        answer = point_in_time(facts.cluster, facts.at(10), now=facts.now)
    assert len(answer.rows) == 62  # old-a, new-b and the 60


def test_a_namespace_and_a_workload_narrow_it(facts):
    other = facts.pod("elsewhere", "other-pod", [{"source_name": "env-config"}], namespace="shop")

    in_demo = point_in_time(facts.cluster, facts.at(5), namespace="demo", now=facts.now)
    workload = point_in_time(facts.cluster, facts.at(5), workload_ids=[other.workload_id], now=facts.now)

    assert other.uid not in by_uid(in_demo) and len(in_demo.rows) == 2
    assert list(by_uid(workload)) == [other.uid]


def test_driftreport_at_prints_the_same(facts):
    out = StringIO()
    call_command("driftreport", "--json", "--cluster", "local", "--at", facts.at(18).isoformat(), stdout=out)
    [answer] = json.loads(out.getvalue())

    assert answer["known"] is True
    rows = {row["pod_uid"]: row for row in answer["rows"]}
    assert rows[facts.old.uid]["verdict"] == "stale"
    assert rows[facts.old.uid]["running"]["version"] == 1 and rows[facts.old.uid]["current"]["version"] == 2


def test_driftreport_at_without_json_prints_a_line_per_row(facts):
    out = StringIO()
    call_command("driftreport", "--cluster", "local", "--at", facts.at(18).isoformat(), stdout=out)
    early = StringIO()
    call_command("driftreport", "--at", facts.at(90).isoformat(), stdout=early)

    line = next(line for line in out.getvalue().splitlines() if facts.old.uid in line)
    assert "ran #1 (unknown), current #2, stale" in line
    assert "did not watch this cluster yet" in early.getvalue()


@pytest.mark.parametrize("moment", ["garbage", "9999-01-01T00:00", "2026-12-01T09:12" + "9" * 50])
def test_driftreport_refuses_a_bad_moment(facts, moment):
    with pytest.raises(CommandError):
        call_command("driftreport", "--json", "--at", moment, stdout=StringIO())


def test_a_probe_counts_from_when_it_was_read(facts):
    """A volume read 30 minutes ago (the old content) and 4 minutes ago (the new): at T, only reads by T count."""
    from drift.models import Consumption, Observation
    from tests.facts import value_hash

    pod = facts.pod("files", "files-a", [{"source_name": "env-config", "mode": "volume", "mount_path": "/etc/c"}],
                    started_minutes_ago=50)  # fmt: skip
    consumption = Consumption.objects.get(container__pod=pod)
    for minutes, value in ((30, "INFO"), (4, "DEBUG")):
        Observation.objects.create(consumption=consumption, observed_at=facts.at(minutes), ok=True,
                                   key_hashes={"log_level": value_hash(value)})  # fmt: skip

    at_25 = by_uid(point_in_time(facts.cluster, facts.at(25), now=facts.now))[pod.uid]
    at_10 = by_uid(point_in_time(facts.cluster, facts.at(10), now=facts.now))[pod.uid]
    at_2 = by_uid(point_in_time(facts.cluster, facts.at(2), now=facts.now))[pod.uid]

    assert (at_25.running.number, at_25.row.verdict, at_25.row.evidence) == (1, "fresh", "observed")
    # The only read by then predates the edit: the file is new on disk by now, the process not known to reload.
    assert (at_10.row.verdict, at_10.current.number) == ("unreloaded", 2)
    assert "predates the change" in at_10.row.reason and at_10.row.observed_at == facts.at(30)
    # The read 4 minutes ago found the new file.
    assert at_2.row.verdict == "unreloaded" and "read the current content" in at_2.row.reason
    assert at_2.row.observed_at == facts.at(4)
