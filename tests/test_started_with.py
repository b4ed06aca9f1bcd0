"""drift.history.started_with: the version a container started with is the one that was current at its start,
by its start time against the versions' times, never one written later (even with the same content). Time in
minutes from T0; the container starts at minute 0 unless a row says otherwise."""

from datetime import UTC, datetime, timedelta

import pytest

from drift.history import HistoryEntry, started_with
from drift.models import SourceVersion

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def entry(number: int, minute: float, content: str, *, api_time: bool = True) -> HistoryEntry:
    """Version #number with `content`, written at `minute` by the API server's time, or (api_time=False) only
    first seen by Driftwatch then."""
    version = SourceVersion(
        content_hash=content, resource_version=str(500 + number), first_seen=at(minute),
        modified_at=at(minute) if api_time else None,
    )  # fmt: skip
    return HistoryEntry(number, version, at(minute), {})


CASES = [
    # (why, history as (minute, content[, api time]), start minute, started with #, same content again as #s)
    ("one version, before the start", [(-90, "A")], 0, 1, []),
    ("changed after the start: still the old one", [(-90, "A"), (10, "B")], 0, 1, []),
    ("changed before the start: the new one", [(-90, "A"), (-10, "B")], 0, 2, []),
    ("written in the second of the start counts as there", [(-90, "A"), (0, "B")], 0, 2, []),
    ("the same content written again later is not what it started with", [(-90, "A"), (-60, "B"), (20, "A")],
     -70, 1, [3]),
    ("a detour and back, all before the start", [(-90, "A"), (-60, "B"), (-20, "A")], 0, 3, []),
    ("repeats are only those after it", [(-90, "A"), (-60, "B"), (-20, "A"), (30, "A"), (40, "C")], 0, 3, [4]),
    ("first seen before the start, by Driftwatch's time only", [(-5, "A", False)], 0, 1, []),
    ("first seen after the start, by Driftwatch's time only: not known", [(5, "A", False)], 0, None, []),
    ("first written after the start by the API server's time: not known", [(5, "A")], 0, None, []),
]  # fmt: skip


@pytest.mark.parametrize(("why", "written", "start", "number", "repeats"), CASES, ids=[c[0] for c in CASES])
def test_the_version_current_at_the_start(why, written, start, number, repeats):
    entries = [entry(i, w[0], w[1], api_time=w[2] if len(w) > 2 else True) for i, w in enumerate(written, 1)]
    found = started_with(entries, at(start))
    assert (found.entry.number if found.entry else None) == number, why
    assert [e.number for e in found.repeats] == repeats, why
    if found.entry is not None:
        assert found.entry.changed_at <= at(start), "never a version written after the container started"
        assert found.unknown == ""
    else:
        assert found.unknown


def test_not_known_says_why():
    seen_late = started_with([entry(1, 5, "A", api_time=False)], at(0))
    assert seen_late.unknown == "Driftwatch first saw #1 after the container started; what it held before is not known"
    written_late = started_with([entry(1, 5, "A")], at(0))
    assert written_late.unknown == "#1 was written after the container started; what came before it was never seen"


def test_never_a_version_written_after_the_start():
    """Every start between and around the versions of a history with repeats, at minute steps."""
    written = [(-90, "A"), (-60, "B"), (-30, "A"), (-10, "C"), (15, "A"), (25, "B")]
    entries = [entry(i, minute, content) for i, (minute, content) in enumerate(written, 1)]
    for start in range(-100, 40):
        found = started_with(entries, at(start))
        if found.entry is None:
            assert start < -90
            continue
        assert found.entry.changed_at <= at(start)
        later = [e for e in entries if e.changed_at > at(start)]
        assert not later or later[0].number == found.entry.number + 1, "the last one written before the start"
