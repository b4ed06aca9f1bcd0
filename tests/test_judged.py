"""Stored verdicts (drift.verdicts.store) say exactly what drift.verdicts judges from the same facts at the same moment,
before and after a propagation window ends, for every kind of consumer; nothing stored shows fresh early; a
cycle writes only what changed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import connection

from drift import verdicts
from drift.models import ClusterVerdicts, Consumption, Observation, SnapshotRun, StoredVerdict, WorkloadVerdicts
from drift.verdicts import drift_rows, pod_verdicts
from drift.vocabulary import RESTART_VERDICTS, VERDICT_ORDER
from tests.facts import Facts, value_hash

pytestmark = pytest.mark.django_db

WINDOW = timedelta(seconds=120)


def volume(name: str, **extra: object) -> dict:
    return {"source_name": name, "mode": "volume", "mount_path": "/etc/config", **extra}


def observe(pod, source_name: str, at: datetime, ok: bool = True, **values: str | None) -> None:
    consumption = Consumption.objects.get(container__pod=pod, source_name=source_name)
    hashes = {key: None if value is None else value_hash(value) for key, value in values.items()}
    Observation.objects.create(consumption=consumption, observed_at=at, ok=ok, key_hashes=hashes,
                               reason="" if ok else "exec timed out")  # fmt: skip


def scenario(facts: Facts) -> None:
    """One of each: env stale (observed and inferred), env fresh, volume propagating (inferred and observed
    behind), volume fresh, subPath stale, a missing source, a deleted one, content from before Driftwatch
    watched, an init container, an optional reference, a split workload, a second namespace."""
    facts.source("env-config", (90, {"level": "INFO"}), (10, {"level": "DEBUG"}))
    facts.source("vol-config", (90, {"a": "1"}), (1, {"a": "2"}))  # changed a minute ago: inside the window
    facts.source("vol-old", (90, {"a": "1"}), (30, {"a": "2"}))  # changed long ago: beyond it
    facts.source("sub-config", (90, {"nginx.conf": "x"}), (20, {"nginx.conf": "y"}))
    facts.source("gone", (90, {"k": "v"}), deleted_minutes_ago=5)
    facts.source("late", (3, {"k": "v"}))  # first seen 3 minutes ago: what a pod of 30 minutes took is unknown
    facts.source("token", (90, {"t": "1"}), kind="Secret", namespace="shop")

    for name in ("env-a", "env-b"):
        facts.pod("env-demo", name, [{"source_name": "env-config"}], started_minutes_ago=30)
    env_c = facts.pod("env-demo", "env-c", [{"source_name": "env-config"}], started_minutes_ago=5)  # split
    observe(env_c, "env-config", facts.at(4), level="DEBUG")
    observed = facts.pod("env-seen", "env-seen-a", [{"source_name": "env-config"}], started_minutes_ago=30)
    observe(observed, "env-config", facts.at(2), level="INFO")

    facts.pod("vol-demo", "vol-a", [volume("vol-config")], started_minutes_ago=30)
    behind = facts.pod("vol-demo", "vol-b", [volume("vol-config")], started_minutes_ago=30)
    observe(behind, "vol-config", facts.at(0.2), a="1")  # read after the change, still the old content
    facts.pod("vol-old", "vol-old-a", [volume("vol-old")], started_minutes_ago=60)
    facts.pod("vol-fresh", "vol-fresh-a", [volume("vol-config")], started_minutes_ago=0.5)
    facts.pod(
        "sub", "sub-a",
        [{"source_name": "sub-config", "mode": "subPath", "keys": ["nginx.conf"], "sub_path": "nginx.conf"}],
    )  # fmt: skip
    facts.pod("gone", "gone-a", [{"source_name": "gone"}, volume("gone", optional=True)])
    facts.pod("late", "late-a", [{"source_name": "late"}])
    facts.pod("init", "init-a", [{"source_name": "env-config"}], container="setup")
    facts.pod("api", "api-a", [{"source_kind": "Secret", "source_name": "token"}], namespace="shop")
    facts.run()


def comparable(rows) -> list[tuple]:
    return sorted(
        (row.consumption_id, row.verdict, row.evidence, row.running_version, row.current_version, row.stale_since,
         row.split, row.workload_id, row.pod_id, row.observed_at)
        for row in rows
    )  # fmt: skip


def moments(now: datetime) -> list[datetime]:
    """Now, and around the ends of the windows of the scenario's propagating volumes."""
    changed = now - timedelta(minutes=1)
    end = changed + WINDOW
    return [now, now + timedelta(seconds=30), end - timedelta(microseconds=1), end, end + timedelta(seconds=1),
            now + timedelta(hours=2)]  # fmt: skip


@pytest.fixture
def facts() -> Facts:
    facts = Facts.for_cluster()
    scenario(facts)
    return facts


def test_the_scenario_covers_every_verdict_and_a_window_that_ends(facts):
    verdicts = {row.verdict for row in drift_rows(facts.cluster, now=facts.now)}
    assert verdicts == set(VERDICT_ORDER)
    later = {row.verdict for row in drift_rows(facts.cluster, now=facts.now + timedelta(hours=1))}
    assert "propagating" not in later


def test_stored_rows_equal_fresh_ones_at_every_moment(facts):
    written = verdicts.facts_changed(facts.cluster, now=facts.now)
    assert written == StoredVerdict.objects.count() + WorkloadVerdicts.objects.count()

    at_judging = verdicts.rows(facts.cluster, now=facts.now)
    assert [(r.consumption_id, r.reason) for r in at_judging] == [
        (r.consumption_id, r.reason) for r in drift_rows(facts.cluster, now=facts.now)
    ]
    for moment in moments(facts.now):
        assert comparable(verdicts.rows(facts.cluster, now=moment)) == comparable(
            drift_rows(facts.cluster, now=moment)
        ), moment


def test_nothing_stored_turns_fresh_before_the_rules_say_so(facts):
    verdicts.facts_changed(facts.cluster, now=facts.now)
    stored = list(StoredVerdict.objects.all())
    assert any(verdict.expires_at is not None for verdict in stored)
    for moment in moments(facts.now):
        fresh = {row.consumption_id: row.verdict for row in drift_rows(facts.cluster, now=moment)}
        for verdict in stored:
            if verdict.expires_at is None or verdict.expires_at > moment:  # a reader would trust it
                assert verdict.verdict == fresh[verdict.consumption_id], (moment, verdict.consumption_id)


def test_summaries_equal_what_the_rows_give(facts):
    verdicts.facts_changed(facts.cluster, now=facts.now)
    for moment in moments(facts.now):
        rows = drift_rows(facts.cluster, now=moment)
        expected = {}
        for summary in verdicts.summarise(rows):
            expected[summary.workload_id] = (summary.pods, summary.modes, summary.split, summary.stale_since)
        got = {
            s.workload_id: (s.pods, s.modes, s.split, s.stale_since)
            for s in verdicts.workload_summaries(facts.cluster, now=moment)
        }
        assert got == expected, moment
        pods = pod_verdicts(rows)
        assert sum(sum(s.pods.values()) for s in verdicts.workload_summaries(now=moment)) == len(pods)


def test_summaries_are_plain_data_with_counts_per_verdict_and_mode(facts):
    verdicts.facts_changed(facts.cluster, now=facts.now)
    summaries = {s.name: s for s in verdicts.workload_summaries("local", now=facts.now)}
    vol = summaries["vol-demo"].as_dict()
    assert vol["cluster"] == "local" and vol["namespace"] == "demo" and vol["kind"] == "Deployment"
    assert vol["pods"]["propagating"] == 2
    assert vol["modes"] == {"volume": {"propagating": 2}}
    assert summaries["env-demo"].split and summaries["env-demo"].attention
    assert summaries["env-demo"].stale_since == facts.at(10)
    # Changed 30 minutes ago, after its pod started an hour ago: the file is new on disk, and nothing says the
    # app re-reads it, so it needs attention (before the process verdict it was fresh).
    assert summaries["vol-old"].attention
    assert summaries["vol-old"].pods["unreloaded"] == 1
    assert summaries["vol-old"].stale_sources == ["ConfigMap vol-old"]
    assert summaries["vol-old"].stale_since == facts.at(30)
    shop = verdicts.workload_summaries(facts.cluster, namespace="shop", now=facts.now)
    assert [s.name for s in shop] == ["api"]
    quiet = verdicts.workload_summaries(facts.cluster, attention=False, now=facts.now)
    assert {s.name for s in quiet} == {"vol-fresh", "api"}


def test_an_idle_cycle_writes_nothing_and_an_expired_window_rewrites_only_its_workload(facts):
    run = SnapshotRun.objects.get()
    verdicts.facts_changed(facts.cluster, now=facts.now)
    stamp = ClusterVerdicts.objects.get().stamp
    idle = facts.run(minutes_ago=-0.2)  # finished after the judgement, nothing written
    assert verdicts.after_cycle(facts.cluster, idle, now=facts.now + timedelta(seconds=20)) == 0
    assert ClusterVerdicts.objects.get().stamp == stamp

    end = facts.now + timedelta(seconds=61)
    before = {v.pk: v.verdict for v in StoredVerdict.objects.all()}
    written = verdicts.after_cycle(facts.cluster, idle, now=end)
    after = {v.pk: v.verdict for v in StoredVerdict.objects.all()}
    changed = {pk for pk in before if before[pk] != after[pk]}
    assert changed and written >= len(changed)
    assert {StoredVerdict.objects.get(pk=pk).workload.name for pk in changed} == {"vol-demo"}
    assert ClusterVerdicts.objects.get().stamp == stamp + 1
    assert comparable(verdicts.rows(facts.cluster, now=end)) == comparable(drift_rows(facts.cluster, now=end))
    assert run.pk


def test_a_cycle_that_recorded_something_judges_the_whole_cluster(facts):
    verdicts.facts_changed(facts.cluster, now=facts.now)
    facts.source("env-config", (0.1, {"level": "WARN"}))  # a new lineage: every env-config reader changes
    run = facts.run(minutes_ago=0)
    SnapshotRun.objects.filter(pk=run.pk).update(rows_written=1)
    run.refresh_from_db()
    later = facts.now + timedelta(seconds=5)
    assert verdicts.after_cycle(facts.cluster, run, now=later) > 0
    assert comparable(verdicts.rows(facts.cluster, now=later)) == comparable(drift_rows(facts.cluster, now=later))


def test_a_failing_cluster_is_judged_as_of_its_last_good_snapshot_and_never_expires(facts):
    verdicts.facts_changed(facts.cluster, now=facts.now)
    failed = facts.run(status="failed", minutes_ago=0, error="connection refused")
    verdicts.after_cycle(facts.cluster, failed, now=facts.now + timedelta(seconds=3))
    assert not StoredVerdict.objects.exclude(expires_at=None).exists()
    far = facts.now + timedelta(hours=3)
    assert comparable(verdicts.rows(facts.cluster, now=far)) == comparable(drift_rows(facts.cluster, now=far))
    assert {"propagating"} <= {s.worst for s in verdicts.workload_summaries(now=far)}


def test_a_source_changed_outside_a_cycle_rejudges_its_readers(facts):
    verdicts.facts_changed(facts.cluster, now=facts.now)
    facts.source("sub-config", (0.1, {"nginx.conf": "z"}))
    later = facts.now + timedelta(seconds=5)
    assert verdicts.source_changed(facts.cluster, "demo", "ConfigMap", "sub-config", now=later) > 0
    assert comparable(verdicts.rows(facts.cluster, now=later)) == comparable(drift_rows(facts.cluster, now=later))


def assert_counts_columns_are_exact(facts: Facts, now: datetime) -> None:
    """Each stored summary's integer columns hold its ``pods``; the cluster's counts (read from those columns, the
    expired workloads judged again) are a recount of the pods' verdicts at ``now``."""
    for stored in WorkloadVerdicts.objects.all():
        columns = {v: getattr(stored, WorkloadVerdicts.pods_field(v)) for v in VERDICT_ORDER}
        assert columns == {v: stored.pods.get(v, 0) for v in VERDICT_ORDER}, stored
    recount = dict.fromkeys(VERDICT_ORDER, 0)
    for verdict in pod_verdicts(drift_rows(facts.cluster, now=now)).values():
        recount[verdict] += 1
    assert verdicts.cluster_counts(facts.cluster, now=now) == recount, now
    assert verdicts.clusters_counts([facts.cluster], now=now) == {facts.cluster.pk: recount}


def test_the_stored_pods_per_verdict_stay_exact_after_every_writer(facts):
    verdicts.facts_changed(facts.cluster, now=facts.now)
    assert_counts_columns_are_exact(facts, facts.now)
    for moment in moments(facts.now):  # expired summaries judged when read
        assert_counts_columns_are_exact(facts, moment)
    later = facts.now + timedelta(seconds=61)  # a propagation window ended: the idle cycle rewrites vol-demo
    assert verdicts.after_cycle(facts.cluster, facts.run(minutes_ago=-0.2), now=later) > 0
    assert_counts_columns_are_exact(facts, later)
    facts.source("sub-config", (0.1, {"nginx.conf": "z"}))  # the watcher's path
    later += timedelta(seconds=5)
    assert verdicts.source_changed(facts.cluster, "demo", "ConfigMap", "sub-config", now=later) > 0
    assert_counts_columns_are_exact(facts, later)
    facts.pod("vol-demo", "vol-c", [volume("vol-config")], started_minutes_ago=0)  # a pod watcher's, a rollout's
    later += timedelta(seconds=5)
    vol_demo = WorkloadVerdicts.objects.get(name="vol-demo").workload_id
    assert verdicts.workloads_changed(facts.cluster, [vol_demo], now=later) > 0
    assert_counts_columns_are_exact(facts, later)
    facts.source("env-config", (0.1, {"level": "WARN"}))
    later += timedelta(seconds=5)
    assert verdicts.facts_changed(facts.cluster, now=later) > 0
    assert_counts_columns_are_exact(facts, later)


def test_readers_judge_a_cluster_never_judged_or_whose_settings_changed(facts):
    assert comparable(verdicts.rows(facts.cluster, now=facts.now)) == comparable(
        drift_rows(facts.cluster, now=facts.now)
    )
    verdicts.facts_changed(facts.cluster, now=facts.now)
    facts.cluster.propagation_window_seconds = 30
    facts.cluster.save()  # admin: the window changed, so what was stored no longer holds
    assert not ClusterVerdicts.objects.exists()
    assert comparable(verdicts.rows(facts.cluster, now=facts.now)) == comparable(
        drift_rows(facts.cluster, now=facts.now)
    )


# What the overview lists from the scenario, written out by hand from the scenario (not computed by drift.verdicts,
# whose ordering is under test): each workload's namespace and pods per (worst) verdict, before and after
# the window of vol-config (changed a minute ago, WINDOW two minutes) ends at facts.now + 60 s. Then vol-a's file
# is new on disk only (nothing says its app re-reads it, so what it runs is not known and makes no split) and
# vol-b, seen behind, is stale. vol-old's file changed after its pod started: new on disk only throughout.
WORKLOADS_BEFORE = {
    "env-demo": ("demo", {"stale": 2, "fresh": 1}),  # env-c started after the change
    "env-seen": ("demo", {"stale": 1}),
    "gone": ("demo", {"missing": 1}),
    "init": ("demo", {"stale": 1}),
    "late": ("demo", {"unknown": 1}),
    "sub": ("demo", {"stale": 1}),
    "vol-demo": ("demo", {"propagating": 2}),
    "vol-fresh": ("demo", {"fresh": 1}),
    "vol-old": ("demo", {"unreloaded": 1}),
    "api": ("shop", {"fresh": 1}),
}
WORKLOADS_AFTER = {**WORKLOADS_BEFORE, "vol-demo": ("demo", {"stale": 1, "unreloaded": 1})}
# Attention: worst verdict first (stale, missing, unreloaded, propagating, unknown, then fresh but split), then namespace,
# kind and name; every other listing by namespace, kind and name.
LISTINGS_BEFORE = {
    verdicts.ATTENTION: ["env-demo", "env-seen", "init", "sub", "gone", "vol-old", "vol-demo", "late"],
    verdicts.SPLIT: ["env-demo"],
    "stale": ["env-demo", "env-seen", "init", "sub"],
    "missing": ["gone"],
    "unreloaded": ["vol-old"],
    "propagating": ["vol-demo"],
    "unknown": ["late"],
    "fresh": ["env-demo", "vol-fresh", "api"],
}
LISTINGS_AFTER = {
    verdicts.ATTENTION: ["env-demo", "env-seen", "init", "sub", "vol-demo", "gone", "vol-old", "late"],
    verdicts.SPLIT: ["env-demo"],
    "stale": ["env-demo", "env-seen", "init", "sub", "vol-demo"],
    "missing": ["gone"],
    "unreloaded": ["vol-demo", "vol-old"],
    "propagating": [],
    "unknown": ["late"],
    "fresh": ["env-demo", "vol-fresh", "api"],
}


def expected_at(now: datetime, moment: datetime) -> tuple[dict, dict]:
    window_ends = now + timedelta(seconds=60)
    return (WORKLOADS_BEFORE, LISTINGS_BEFORE) if moment < window_ends else (WORKLOADS_AFTER, LISTINGS_AFTER)


def pods_of(workloads: dict, names: list[str]) -> dict[str, int]:
    return {verdict: sum(workloads[name][1].get(verdict, 0) for name in names) for verdict in VERDICT_ORDER}


@pytest.mark.parametrize("judge_first", [True, False], ids=["stored", "never-judged"])
def test_pages_and_counts_are_what_the_scenario_gives(facts, judge_first):
    """The overview's reader (counts in the database, one limited query per page, expired workloads judged in
    memory and merged in) against the listings written out above: at every moment, for every listing, namespace
    filter and page size, page by page."""
    if judge_first:
        verdicts.facts_changed(facts.cluster, now=facts.now)
    assert set(LISTINGS_BEFORE) == set(LISTINGS_AFTER) == {verdicts.ATTENTION, verdicts.SPLIT, *VERDICT_ORDER}
    for moment in moments(facts.now):
        workloads, listings = expected_at(facts.now, moment)
        for namespace in (None, "demo", "shop"):
            for listing, order in listings.items():
                listed = [name for name in order if namespace in (None, workloads[name][0])]
                for page_size in (2, 50):
                    pages = [listed[start : start + page_size] for start in range(0, len(listed), page_size)] or [[]]
                    for number in range(1, len(pages) + 2):  # one past the last: the last again
                        shown = verdicts.workload_pages([facts.cluster], namespace, listing, number, page_size, moment)
                        got = shown[facts.cluster.pk]
                        context = (moment, namespace, listing, page_size, number)
                        assert got.pages == len(pages), context
                        assert [s.name for s in got.workloads] == pages[min(number, len(pages)) - 1], context
                    assert got.listed_count == len(listed), context
                    assert got.listed.pods == pods_of(workloads, listed), context
            attention = set(listings[verdicts.ATTENTION])
            expected_namespaces = {}
            for name in ("demo", "shop"):
                if namespace not in (None, name):
                    continue
                here = [workload for workload, (its, _) in workloads.items() if its == name]
                expected_namespaces[name] = verdicts.Tally(
                    attention=len(attention.intersection(here)),
                    fresh=len(set(here) - attention),
                    # a restart brings a workload up to date when a pod of it is stale or new on disk only
                    restart=sum(1 for w in here if any(workloads[w][1].get(v, 0) for v in RESTART_VERDICTS)),
                    pods=pods_of(workloads, here),
                )
            assert got.namespaces == expected_namespaces, (moment, namespace)
            assert got.every_namespace == {"demo", "shop"}, (moment, namespace)


def test_a_listing_that_is_not_one_is_refused_before_it_reaches_a_query(facts):
    verdicts.facts_changed(facts.cluster, now=facts.now)
    with pytest.raises(ValueError, match="no such listing"):
        verdicts.workload_pages([facts.cluster], None, "stale__gt", 1, 50, facts.now)


def test_pages_sort_names_as_python_does_whatever_the_databases_collation():
    """Names that a language collation orders apart from code points ("a-b", "a.c", "a0", "ab"): the database's
    pages must follow the order the in-memory merge uses, or a page would repeat or skip a workload."""
    # This machine's databases collate as C. Give the columns, in the test's transaction, a collation that skips
    # punctuation as glibc's en_US.UTF-8 does, so that a page ordered by the database's collation would show here.
    with connection.cursor() as cursor:
        cursor.execute("CREATE COLLATION skip_punctuation (provider = icu, locale = 'und-u-ka-shifted')")
        for column in ("namespace", "kind", "name"):
            cursor.execute(
                f"ALTER TABLE drift_workloadverdicts ALTER COLUMN {column} TYPE varchar COLLATE skip_punctuation"
            )
    facts = Facts.for_cluster()
    facts.source("env-config", (90, {"level": "INFO"}), (10, {"level": "DEBUG"}))
    names = ["ab", "a-b", "a0", "a.c", "a-c", "aa"]
    for name in names:
        facts.pod(name, f"{name}-pod", [{"source_name": "env-config"}], started_minutes_ago=30)
    facts.run()
    verdicts.facts_changed(facts.cluster, now=facts.now)
    for listing in (verdicts.ATTENTION, "stale"):
        shown = [
            verdicts.workload_pages([facts.cluster], None, listing, number, 1, facts.now)[facts.cluster.pk].workloads
            for number in range(1, len(names) + 1)
        ]
        assert [page[0].name for page in shown] == sorted(names), listing
