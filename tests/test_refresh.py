"""The measured refresh delays, the window they narrow, and when a failed probe is tried again: pure tables."""

from datetime import UTC, datetime, timedelta

import pytest

from drift.verdicts.refresh import (
    RETRY_CAP,
    RefreshDelays,
    effective_window,
    is_transient,
    refresh_delay,
    retry_delay,
    retry_due,
)

T0 = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
CONFIGURED = timedelta(seconds=120)
S = timedelta(seconds=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("delays", "configured", "window"),
    [
        ((), CONFIGURED, CONFIGURED),  # nothing seen: the configured window
        ((10, 20, 30, 40), CONFIGURED, CONFIGURED),  # four samples are not enough
        ((10, 20, 30, 40, 50), CONFIGURED, 50 * 1.5 * S + 30 * S),  # five: 1.5x the longest + 30 s
        ((8, 9, 10, 9, 8, 10), CONFIGURED, 45 * S),  # a kubelet with syncFrequency 10s
        ((25, 72, 58, 60, 44), CONFIGURED, CONFIGURED),  # 72x1.5+30 = 138 s > 120 s: the configured bound holds
        ((25, 72, 58, 60, 44), 600 * S, 138 * S),  # a generous configured window is narrowed to what was seen
        ((0, 0, 0, 0, 0), CONFIGURED, 30 * S),  # instant refreshes still leave the margin
    ],
)
def test_effective_window(delays, configured, window):
    assert effective_window(delays, configured) == window


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        ((), "no volume refresh seen yet"),
        ((42.0,), "volumes refreshed 42 s after a change (median 42 s, 1 seen)"),
        ((25.0, 72.0, 58.0, 60.0), "volumes refreshed 25-72 s after a change (median 59 s, 4 seen)"),
    ],
)
def test_summary(seconds, text):
    assert RefreshDelays(seconds).summary() == text


@pytest.mark.parametrize(
    ("written", "set_up", "changes", "delay"),
    [
        (at(60), at(-100), [at(0)], 60.0),  # the plain case
        (at(60), at(-100), [at(-50), at(0), at(200)], 60.0),  # the last change before the write counts
        (at(60), at(10), [at(0)], None),  # the pod was set up after the change: a set-up, not a refresh
        (at(60), None, [at(0)], None),  # unknown set-up time: cannot tell
        (at(60), at(-100), [], None),  # no change known (the first sighting is no change)
        (at(60), at(-100), [at(62)], None),  # written before the only change: not a refresh of it
        (at(60), at(-100), [at(60.5)], 0.0),  # ..data names are second-truncated: half a second early is now
        (at(7200), at(-100), [at(0)], None),  # two hours later is not a kubelet sync
    ],
)
def test_refresh_delay(written, set_up, changes, delay):
    assert refresh_delay(written, set_up, changes) == delay


@pytest.mark.parametrize(
    ("reason", "transient"),
    [
        ("exec timed out after 10s", True),
        ("exec interrupted: exec into demo/p/app: [Errno 104] Connection reset by peer", True),
        ("exec interrupted (ConnectionResetError)", True),
        ("exec forbidden (create pods/exec in demo)", False),
        ("no shell in the container: exec could not start the probe's command (...)", False),
        ("file(s) unreadable: secret.txt", False),
        ("no files on simulated node", False),
        ("pod gone before it could be read", False),
        ("", False),
    ],
)
def test_is_transient(reason, transient):
    assert is_transient(reason) is transient


BASE = timedelta(seconds=30)


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, timedelta(0)), (1, BASE), (2, 2 * BASE), (3, 4 * BASE), (6, 32 * BASE), (7, RETRY_CAP), (500, RETRY_CAP)],
)
def test_retry_delay_doubles_up_to_the_cap(failures, delay):
    assert retry_delay(failures, BASE) == delay


@pytest.mark.parametrize(
    ("reason", "failures", "since", "due"),
    [
        ("exec timed out after 10s", 1, 30 * S, True),  # the next cycle after one failure
        ("exec timed out after 10s", 1, 28 * S, True),  # a cycle a little early still counts
        ("exec timed out after 10s", 1, 20 * S, False),
        ("exec timed out after 10s", 2, 30 * S, False),  # after two failures: two cycles
        ("exec timed out after 10s", 2, 60 * S, True),
        ("exec timed out after 10s", 3, 90 * S, False),
        ("exec timed out after 10s", 3, 120 * S, True),
        ("exec timed out after 10s", 40, RETRY_CAP - S, True),  # capped: never waits longer than the cap
        ("exec timed out after 10s", 40, RETRY_CAP / 2, False),
        ("exec forbidden (create pods/exec in demo)", 1, timedelta(days=1), False),  # permanent: never
        ("no shell in the container: exec could not start the probe's command", 1, timedelta(days=1), False),
    ],
)
def test_retry_due(reason, failures, since, due):
    assert retry_due(reason, failures, since, BASE) is due
