"""The one way pages write a time (dashboard/templatetags/moments.py) and a version (driftwatch.version_name)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.test import override_settings

from dashboard.templatetags.driftwatch import version_name
from dashboard.templatetags.moments import absolute, relative, span

NOW = datetime(2026, 12, 1, 9, 30, 0, tzinfo=UTC)

RELATIVE = [
    # (seconds before now, style, shown)
    (0, "", "just now"),
    (0.4, "", "just now"),
    (3, "", "3 s ago"),
    (59, "", "59 s ago"),
    (60, "", "1 min ago"),
    (12 * 60 + 40, "", "12 min ago"),
    (3600, "", "1 h ago"),
    (2 * 3600 + 5 * 60, "", "2 h 5 min ago"),
    (7 * 3600 + 5 * 60, "", "7 h ago"),
    (86400, "", "1 day ago"),
    (3 * 86400 + 7200, "", "3 days ago"),
    (-30, "", "in 30 s"),
    (-150, "", "in 2 min"),
    (12 * 60, "for", "12 min"),
    (3, "for", "3 s"),
    (-5, "for", "0 s"),  # a span never runs backwards: a clock a little ahead reads 0
]


@pytest.mark.parametrize(("ago", "style", "shown"), RELATIVE)
def test_relative(ago, style, shown):
    assert relative(NOW - timedelta(seconds=ago), NOW, style) == shown


def test_span_of_whole_seconds():
    assert [span(s) for s in (0, 1.9, 61, 3599, 3600)] == ["0 s", "1 s", "1 min", "59 min", "1 h"]


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("UTC", "2026-12-01 09:10:23 UTC"),
        ("Europe/Paris", "2026-12-01 10:10:23 CET"),
        ("Asia/Kolkata", "2026-12-01 14:40:23 IST"),
    ],
)
def test_absolute_names_its_zone(zone, shown):
    with override_settings(TIME_ZONE=zone):
        assert absolute(datetime(2026, 12, 1, 9, 10, 23, tzinfo=UTC)) == shown


def render(source: str, **context) -> str:
    return Template("{% load moments driftwatch %}" + source).render(Context(context))


def test_the_filter_writes_a_time_element_with_the_absolute_time_on_hover():
    moment = datetime.now(UTC) - timedelta(minutes=12, seconds=5)
    html = render("{{ at|moment }}", at=moment)
    local = moment.strftime("%Y-%m-%d %H:%M:%S")
    assert html == f'<time datetime="{moment.isoformat()}" title="{local} UTC">12 min ago</time>'
    assert render("stale for {{ at|moment:'for' }}", at=moment).endswith(">12 min</time>")


def test_no_time_is_nothing_so_default_applies():
    assert render('{{ at|moment|default:"(not yet)" }}', at=None) == "(not yet)"


VERSIONS = [
    (12, "35136", '<span class="version" title="resourceVersion 35136">#12</span>'),
    (1, "7", '<span class="version" title="resourceVersion 7">#1</span>'),
    (3, "", "#3"),
    (None, "35136", "resourceVersion 35136"),
    (None, None, "unknown"),
    (None, "", "unknown"),
    (2, '"><script>', '<span class="version" title="resourceVersion &quot;&gt;&lt;script&gt;">#2</span>'),
]


@pytest.mark.parametrize(("number", "resource_version", "shown"), VERSIONS)
def test_version_name(number, resource_version, shown):
    assert str(version_name(number, resource_version)) == shown
    assert render("{% version_name n rv %}", n=number, rv=resource_version) == shown


TIME_TICKS = [
    # (start, end as HH:MM on 2026-12-01 UTC, labels)
    ("09:07", "09:37", ["09:10", "09:15", "09:20", "09:25", "09:30", "09:35"]),
    ("09:07", "09:09", ["09:07", "09:08", "09:09"]),
    ("04:30", "09:30", ["05:00", "06:00", "07:00", "08:00", "09:00"]),
    ("09:30", "09:30", ["09:30"]),
]


@pytest.mark.parametrize(("start", "end", "labels"), TIME_TICKS)
def test_time_ticks_fall_on_round_local_times_inside_the_span(start, end, labels):
    from dashboard.templatetags.charts import LEFT, RIGHT, time_ticks

    def moment(hhmm: str) -> datetime:
        return datetime(2026, 12, 1, int(hhmm[:2]), int(hhmm[3:]), tzinfo=UTC)

    ticks = time_ticks(moment(start), moment(end))
    assert [tick.label for tick in ticks] == labels
    assert all(LEFT <= tick.position <= RIGHT for tick in ticks)


def test_time_ticks_are_in_the_servers_zone():
    from dashboard.templatetags.charts import time_ticks

    with override_settings(TIME_ZONE="Asia/Kolkata"):  # UTC+5:30: round hours there are half hours in UTC
        ticks = time_ticks(datetime(2026, 12, 1, 4, 0, tzinfo=UTC), datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    assert [tick.label for tick in ticks] == ["10:00", "11:00", "12:00", "13:00", "14:00"]


@pytest.mark.parametrize(("peak", "labels"), [(0, ["0", "1"]), (1, ["0", "1"]), (4, ["0", "2", "4"]), (5, ["0", "5"])])
def test_count_ticks(peak, labels):
    from dashboard.templatetags.charts import BOTTOM, TOP, count_ticks

    ticks = count_ticks(peak)
    assert [tick.label for tick in ticks] == labels
    assert ticks[0].position == BOTTOM and ticks[-1].position == TOP
