"""The pure rules of point in time (drift.verdicts.at): watched or not at T, a pod or container run there at T,
what a source held at T, and the moments a URL may ask for. Tables of hand-made cases; no database."""

from datetime import UTC, datetime, timedelta

import pytest

from drift.verdicts import at as pit
from drift.verdicts import rules

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GAP = pit.allowed_gap(30)  # 150 s


def t(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def run(minutes_ago: float, seconds: float = 2) -> pit.Run:
    return pit.Run(t(minutes_ago), t(minutes_ago) + timedelta(seconds=seconds))


@pytest.mark.parametrize(
    ("at", "before", "after", "known", "says"),
    [
        (t(10), run(10.2), run(9.7), True, ""),
        (t(10), None, run(9.7), False, "did not watch this cluster yet"),
        (t(10), None, None, False, "no good snapshot yet"),
        (t(10), run(20), run(9.7), False, "no good snapshot between"),  # a 10-minute gap around T
        (t(10), run(10.2), None, False, "none since"),  # snapshots stopped: now is 10 minutes later
        (t(0.5), run(1), None, True, ""),  # the last snapshot a minute ago, none since: still watching
        (NOW + timedelta(minutes=5), run(1), None, False, "in the future"),
    ],
)
def test_coverage_says_not_known_where_driftwatch_did_not_watch(at, before, after, known, says):
    covered = pit.coverage(at, before, after, NOW, GAP)

    assert covered.known is known
    assert says in covered.reason


@pytest.mark.parametrize(
    ("started", "ended", "after", "expected"),
    [
        (t(30), None, run(9.7), pit.Presence.RAN),
        (t(5), None, run(9.7), pit.Presence.NOT_RAN),  # started after T
        # The API gives start times in whole seconds: one in T's own second may have started after T.
        (t(10), None, run(9.7), pit.Presence.NOT_KNOWN),
        (t(10) - timedelta(seconds=1), None, run(9.7), pit.Presence.RAN),
        (t(10) + timedelta(milliseconds=1), None, run(9.7), pit.Presence.NOT_RAN),  # a precise time: after T
        (None, None, run(9.7), pit.Presence.NOT_RAN),  # never started
        (t(30), t(12), run(9.7), pit.Presence.NOT_RAN),  # known gone before T
        (t(30), t(9.69), run(9.7), pit.Presence.NOT_KNOWN),  # the snapshot after T no longer listed it
        (t(30), t(9), run(9.7), pit.Presence.RAN),  # a later snapshot missed it: the one after T still had it
        (t(30), t(9), None, pit.Presence.NOT_KNOWN),  # no snapshot after T finished
    ],
)
def test_presence_at_ten_minutes_ago(started, ended, after, expected):
    assert pit.presence(t(10), started, ended, after) == expected


def version(rv: str, minutes_ago: float, uid: str = "u1", deleted: float | None = None) -> rules.SourceVersion:
    return rules.SourceVersion(rv, {"k": f"h{rv}"}, t(minutes_ago), uid, t(deleted) if deleted is not None else None)


SOURCE = rules.Source(
    "ConfigMap", "cm", True, (version("1", 60), version("2", 20), version("3", 5)), watched_since=t(60)
)
DELETED = rules.Source("ConfigMap", "cm", False, (version("1", 60, deleted=8),), watched_since=t(60))


@pytest.mark.parametrize(
    ("source", "minutes_ago", "versions", "exists"),
    [
        (SOURCE, 30, ["1"], True),
        (SOURCE, 20, ["1", "2"], True),  # appeared exactly at T
        (SOURCE, 10, ["1", "2"], True),
        (SOURCE, 1, ["1", "2", "3"], True),
        (SOURCE, 90, [], False),  # before the first version: the rules say prehistory
        (DELETED, 10, ["1"], True),  # deleted later: existed at T, and its deletion is not yet known there
        (DELETED, 5, ["1"], False),
    ],
)
def test_source_at_holds_what_had_appeared_by_then(source, minutes_ago, versions, exists):
    at = pit.source_at(source, t(minutes_ago))

    assert [v.resource_version for v in at.versions] == versions
    assert at.exists is exists
    if minutes_ago == 10 and source is DELETED:
        assert at.versions[-1].deleted_at is None


def test_current_at():
    assert pit.current_at(SOURCE.versions, t(10)).resource_version == "2"
    assert pit.current_at(SOURCE.versions, t(90)) is None
    assert pit.current_at(DELETED.versions, t(5)) is None


def test_the_rules_judge_at_t_as_now():
    """An env consumer started 30 minutes ago: fresh at T=25 (before the edit at 20), stale at T=10."""
    consumer = rules.Consumer(rules.Mode.ENV_FROM)
    container = rules.Container("app", False, True, t(30), t(30))
    window = timedelta(seconds=120)
    before = rules.judge(consumer, container, pit.source_at(SOURCE, t(25)), None, t(25), window)
    after = rules.judge(consumer, container, pit.source_at(SOURCE, t(10)), None, t(10), window)

    assert (before.verdict, before.running_version, before.current_version) == ("fresh", "1", "1")
    assert (after.verdict, after.running_version, after.current_version) == ("stale", "1", "2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Give a moment"),
        ("yesterday", "is not a moment"),
        ("2026-13-01T00:00", "is not a moment"),
        ("9999-12-31T23:59", "in the future"),
        ("2027-01-01T00:00Z", "in the future"),
        ("1999-12-31T23:59Z", "before 2000"),
        ("2026-12-01T09:12" + "0" * 40, "at most 40 characters"),
        ("<script>", "is not a moment"),
    ],
)
def test_bad_moments_are_refused_with_a_sentence(text, message):
    with pytest.raises(ValueError, match=message):
        pit.parse_moment(text, NOW, UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T09:12", datetime(2026, 12, 1, 9, 12, tzinfo=UTC)),
        ("2026-12-01 09:12:30", datetime(2026, 12, 1, 9, 12, 30, tzinfo=UTC)),
        ("2026-12-01T10:12:00+01:00", datetime(2026, 12, 1, 9, 12, tzinfo=UTC)),
        ("2026-12-01T09:12:00Z", datetime(2026, 12, 1, 9, 12, tzinfo=UTC)),
    ],
)
def test_moments_parse(text, expected):
    assert pit.parse_moment(text, NOW, UTC) == expected
