"""Table-driven tests for what a change did (drift.verdicts.rules.picked_up, trouble_after): which container runs
took a version up and when, and what went wrong with them soon after.

Time is in minutes from T0. Unless a row says otherwise app-config has #1 (level=info) from minute 0, #2
(level=debug) from minute 10 and #3 (level=bad) from minute 20; the version asked about is #2."""

from datetime import UTC, datetime, timedelta

import pytest

from drift.verdicts.rules import (
    Consumer,
    Mode,
    PickedUp,
    Probe,
    Run,
    Source,
    SourceVersion,
    TroubleSeen,
    picked_up,
    trouble_after,
)
from drift.vocabulary import PickUp, Trouble

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float | None) -> datetime | None:
    return None if minutes is None else T0 + timedelta(minutes=minutes)


def ver(rv, minute, deleted=None, **keys) -> SourceVersion:
    return SourceVersion(rv, keys, at(minute), "u1", at(deleted))


THREE = (ver("1", 0, level="info"), ver("2", 10, level="debug"), ver("3", 20, level="bad"))


def cm(*versions) -> Source:
    return Source("ConfigMap", "app-config", True, versions or THREE)


def read(minute, written=None, ok=True, **keys) -> Probe:
    return Probe(at(minute), ok, "" if ok else "exec failed", keys, at(written))


ENV = Consumer(Mode.ENV, ("level",))
VOLUME = Consumer(Mode.VOLUME)
SUBPATH = Consumer(Mode.SUBPATH, ("level",))
STARTED = PickUp.STARTED_WITH
DISK = PickUp.ON_DISK


@pytest.mark.parametrize(
    "consumer, started, probes, source, index, expected",
    [
        # A run that started while #2 was current took it up at its start, whatever the mode.
        (ENV, 12, [], None, 1, (12, STARTED)),
        (SUBPATH, 12, [], None, 1, (12, STARTED)),
        (VOLUME, 12, [], None, 1, (12, STARTED)),
        # At the very moment it appeared: current then (the rules' _states_at counts it so).
        (ENV, 10, [], None, 1, (10, STARTED)),
        # Started before #2, or after #3 replaced it: env never took #2 up.
        (ENV, 5, [], None, 1, None),
        (ENV, 25, [], None, 1, None),
        (ENV, 25, [], None, 2, (25, STARTED)),
        # The latest version has no end.
        (ENV, 500, [], None, 2, (500, STARTED)),
        # A lineage deleted before the start: nothing of it was taken up.
        (ENV, 15, [], cm(ver("1", 0, level="info"), ver("2", 10, deleted=14, level="debug")), 1, None),
        # Never started and never seen: nothing to say.
        (ENV, None, [], None, 1, None),
        # A volume that started before #2 takes it up when a probe sees its content: at the kubelet's write time.
        (VOLUME, 5, [read(8, level="info"), read(13, written=11.5, level="debug")], None, 1, (11.5, DISK)),
        # Without the write time, when it was read; the first matching read counts, in time order.
        (VOLUME, 5, [read(16, level="debug"), read(13, level="debug")], None, 1, (13, DISK)),
        # A failed read, or one of another content, says nothing; a read of #2's content before #2 appeared is
        # an earlier version with the same content, not #2.
        (VOLUME, 5, [read(13, ok=False, level="debug"), read(14, level="info")], None, 1, None),
        (
            VOLUME,
            5,
            [read(7, level="debug")],
            cm(ver("1", 0, level="debug"), ver("2", 10, level="debug", other="x")),
            1,
            None,
        ),
        # A write time older than the version (a probe of the same content written before): the read's time.
        (VOLUME, 5, [read(13, written=9, level="debug")], None, 1, (13, DISK)),
        # Env and subPath are never rewritten: a probe does not make them take a later version up.
        (ENV, 5, [read(13, level="debug")], None, 1, None),
        (SUBPATH, 5, [read(13, level="debug")], None, 1, None),
    ],
)
def test_picked_up(consumer, started, probes, source, index, expected):
    found = picked_up(consumer, at(started), probes, source or cm(), index)
    assert found == (PickedUp(at(expected[0]), expected[1]) if expected else None)


def run(started, seen=None, reason="", code=None, finished=None, waiting="") -> Run:
    return Run(at(started), at(seen if seen is not None else started), reason, code, at(finished), waiting)


CRASHED, RESTARTED = Trouble.CRASHED, Trouble.RESTARTED


@pytest.mark.parametrize(
    "runs, expected",
    [
        # Picked up at minute 20 (the first run's start); it runs on: no trouble.
        ([run(20)], []),
        # It crashed at 20.5 with exit code 3 and the kubelet started it again at 21 (and it crash-loops).
        (
            [run(20, reason="Error", code=3, finished=20.5), run(21, waiting="CrashLoopBackOff")],
            [
                (20.5, CRASHED, "Error, exit code 3"),
                (21, CRASHED, "CrashLoopBackOff"),
                (21, RESTARTED, "Error, exit code 3"),
            ],
        ),
        # Killed for memory: the reason and the code.
        ([run(20, reason="OOMKilled", code=137, finished=25)], [(25, CRASHED, "OOMKilled, exit code 137")]),
        # A restart whose cause the status no longer told: restarted, without a reason.
        ([run(20), run(24)], [(24, RESTARTED, "")]),
        # Outside the window (10 minutes): after it, or a run from before the pick-up.
        ([run(20, reason="Error", code=1, finished=31), run(31)], []),
        ([run(5, reason="Error", code=1, finished=8), run(20)], []),
        # Ended cleanly (exit code 0: a rollout's SIGTERM handled, a Job done): no trouble.
        ([run(20, reason="Completed", code=0, finished=22)], []),
        ([run(20, reason="Completed", finished=22)], []),
        # A reason without a code still counts.
        ([run(20, reason="Error", finished=22)], [(22, CRASHED, "Error")]),
        # Crash-looping but never seen running: its first sighting counts, and it came after the run that took the
        # version up (not read: it began long before), so it is a restart too.
        ([run(None, seen=23, waiting="CrashLoopBackOff")], [(23, CRASHED, "CrashLoopBackOff"), (23, RESTARTED, "")]),
        ([run(24)], [(24, RESTARTED, "")]),
        # The runs come in any order.
        (
            [run(26), run(20, reason="Error", code=2, finished=25)],
            [(25, CRASHED, "Error, exit code 2"), (26, RESTARTED, "Error, exit code 2")],
        ),
    ],
)
def test_trouble_after(runs, expected):
    found = trouble_after(at(20), runs, timedelta(minutes=10))
    assert found == [TroubleSeen(at(minute), what, reason) for minute, what, reason in expected]
