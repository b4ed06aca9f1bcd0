"""Table-driven tests for drift.verdicts.rules.advice and workload_advice: the words a team lead reads on a row,
per mode and verdict, and whether the row offers Roll out."""

from datetime import datetime

import pytest

from drift.verdicts.rules import Advice, advice, restart_summary, workload_advice
from drift.vocabulary import Mode, Verdict

BY = datetime(2026, 12, 1, 9, 12, 40)

CASES = [
    # mode, verdict, refresh_by, median, expected text, restart
    (Mode.ENV, Verdict.STALE, None, None, "env read at start — restart needed", True),
    (Mode.ENV_FROM, Verdict.STALE, None, None, "env read at start — restart needed", True),
    (Mode.SUBPATH, Verdict.STALE, None, None, "subPath never refreshed — restart needed", True),
    (Mode.VOLUME, Verdict.STALE, None, None, "volume not refreshed within the kubelet's window — restart needed", True),
    (Mode.VOLUME, Verdict.PROPAGATING, BY, 30.4, "volume: the kubelet refreshes it by about 09:12 (median 30 s on this cluster)", False),
    (Mode.VOLUME, Verdict.PROPAGATING, BY, None, "volume: the kubelet refreshes it by about 09:12", False),
    (Mode.VOLUME, Verdict.PROPAGATING, None, None, "volume: the kubelet refreshes it within its window", False),
    (Mode.PROJECTED, Verdict.PROPAGATING, BY, 58, "projected volume: the kubelet refreshes it by about 09:12 (median 58 s on this cluster)", False),
    (Mode.VOLUME, Verdict.UNRELOADED, None, None, "file new, app not known to reload", True),
    (Mode.PROJECTED, Verdict.UNRELOADED, None, None, "file new, app not known to reload", True),
    (Mode.ENV, Verdict.MISSING, None, None, "source missing: create it or fix the reference", False),
    (Mode.SUBPATH, Verdict.UNKNOWN, None, None, "not known yet: see the workload page for why", False),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "verdict", "refresh_by", "median", "text", "restart"), CASES)
def test_advice(mode, verdict, refresh_by, median, text, restart):
    assert advice(mode, verdict, refresh_by, median) == Advice(text, restart)


@pytest.mark.parametrize("mode", list(Mode))
def test_a_fresh_row_needs_no_advice(mode):
    assert advice(mode, Verdict.FRESH) is None


def test_modes_and_verdicts_are_taken_as_their_stored_strings():
    assert advice("envFrom", "stale") == Advice("env read at start — restart needed", True)


WORKLOAD_CASES = [
    # modes (pods per mode and verdict), expected texts in order
    ({}, []),
    ({"envFrom": {"fresh": 2}}, []),
    ({"envFrom": {"stale": 2}}, ["env read at start — restart needed"]),
    # env and envFrom say the same: once.
    ({"env": {"stale": 1}, "envFrom": {"stale": 2}}, ["env read at start — restart needed"]),
    # the worst verdict per mode decides.
    ({"volume": {"propagating": 1, "stale": 1}}, ["volume not refreshed within the kubelet's window — restart needed"]),
    # what needs a restart comes first, whatever the mode order.
    (
        {"volume": {"propagating": 2}, "subPath": {"stale": 1}},
        ["subPath never refreshed — restart needed", "volume: the kubelet refreshes it by about 09:12 (median 30 s on this cluster)"],
    ),
    ({"volume": {"unreloaded": 2, "fresh": 1}}, ["file new, app not known to reload"]),
    ({"volume": {"fresh": 2}, "env": {"unknown": 1}}, ["not known yet: see the workload page for why"]),
]  # fmt: skip


@pytest.mark.parametrize(("modes", "texts"), WORKLOAD_CASES)
def test_workload_advice(modes, texts):
    assert [said.text for said in workload_advice(modes, BY, 30)] == texts


SUMMARY_CASES = [
    ([0, 3, 0, 0], "3 workloads need a restart in 1 of 4 clusters"),
    ([1], "1 workload needs a restart in 1 of 1 cluster"),
    ([2, 5], "7 workloads need a restart in 2 of 2 clusters"),
    ([0], "No workload needs a restart in 1 cluster"),
    ([0, 0, 0], "No workload needs a restart in any of 3 clusters"),
]


@pytest.mark.parametrize(("counts", "line"), SUMMARY_CASES)
def test_restart_summary(counts, line):
    assert restart_summary(counts) == line
