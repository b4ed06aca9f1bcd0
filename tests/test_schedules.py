"""The next run of a CronJob, from its schedule, time zone and suspend flag: a table."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from drift.schedules import next_run, of_cron_job

NOW = datetime(2026, 3, 28, 23, 50, tzinfo=UTC)  # the night Paris moves its clocks forward (02:00 -> 03:00)
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    "schedule, zone, suspended, expected",
    [
        ("*/5 * * * *", None, False, datetime(2026, 3, 28, 23, 55, tzinfo=UTC)),
        ("0 * * * *", None, False, datetime(2026, 3, 29, 0, 0, tzinfo=UTC)),
        ("@hourly", None, False, datetime(2026, 3, 29, 0, 0, tzinfo=UTC)),
        ("@daily", None, False, datetime(2026, 3, 29, 0, 0, tzinfo=UTC)),
        ("  30   6 * * *  ", None, False, datetime(2026, 3, 29, 6, 30, tzinfo=UTC)),  # spaces as kubectl keeps them
        ("0 9 ? * MON", None, False, datetime(2026, 3, 30, 9, 0, tzinfo=UTC)),  # "?" and day names
        # The zone decides: 06:30 in Paris is 04:30 UTC after the clocks moved (summer time, +02:00).
        ("30 6 * * *", "Europe/Paris", False, datetime(2026, 3, 29, 6, 30, tzinfo=PARIS)),
        # 23:50 UTC is 08:50 the next morning in Tokyo: its next midnight is a day later.
        ("0 0 * * *", "Asia/Tokyo", False, datetime(2026, 3, 30, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo"))),
        # 02:30 does not exist in Paris that night: it runs at the transition, 03:00 summer time.
        ("30 2 * * *", "Europe/Paris", False, datetime(2026, 3, 29, 3, 0, tzinfo=PARIS)),
    ],
)
def test_the_next_run_is_the_schedules_next_time_in_its_zone(schedule, zone, suspended, expected):
    found = next_run(schedule, zone, suspended, NOW)
    assert found.unknown == ""
    assert found.at == expected
    assert found.zone == (zone or "UTC")
    assert found.zone_assumed is (zone is None)


@pytest.mark.parametrize(
    "schedule, zone, reason",
    [
        ("", None, "the CronJob has no schedule"),
        ("not a schedule", None, "is not a five-field cron schedule"),
        ("* * * * * *", None, "is not a five-field cron schedule"),  # a seconds field: Kubernetes refuses it
        ("0 9 * * 1#2", None, "is not a five-field cron schedule"),  # "#": not Kubernetes' syntax
        ("61 * * * *", None, "Driftwatch cannot read it"),
        ("0 0 31 2 *", None, "it never fires"),
        ("@every 1h", None, "is not a schedule Driftwatch can read"),
        ("TZ=Europe/Paris 0 6 * * *", None, "set spec.timeZone"),
        ("0 6 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("0 6 * * *", "../../etc/passwd", "unknown time zone"),
    ],
)
def test_a_schedule_it_cannot_read_is_a_clear_cannot_tell(schedule, zone, reason):
    found = next_run(schedule, zone, False, NOW)
    assert found.at is None
    assert reason in found.unknown
    assert found.words(UTC).startswith("next run: cannot tell (")


def test_a_suspended_cron_job_has_no_next_run_whatever_its_schedule():
    for schedule in ("*/5 * * * *", "garbage"):
        found = of_cron_job({"schedule": schedule, "suspend": True}, NOW)
        assert found.suspended and found.at is None
        assert found.words(UTC).startswith("suspended: no next run")


def test_the_words_give_the_time_in_the_pages_zone_and_say_when_the_zone_is_assumed():
    assumed = of_cron_job({"schedule": "0 7 * * *"}, NOW)
    assert assumed.words(UTC) == (
        "its next Job will read the current config at 07:00 (2026-03-29 UTC; schedule in UTC, the controller "
        "manager's zone, assumed)"
    )
    declared = of_cron_job({"schedule": "0 7 * * *", "timeZone": "Europe/Paris"}, NOW)
    assert (
        declared.words(UTC)
        == "its next Job will read the current config at 05:00 (2026-03-29 UTC; schedule in Europe/Paris)"
    )
