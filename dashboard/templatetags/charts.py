"""Page geometry of the overview's SVG chart: where the points of a stale-pods series fall in the picture, and its
axes: time on x (ticks at whole hours or minutes, labelled in the server's time zone), stale pods on y."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django import template
from django.utils import timezone

from dashboard.pages.overview import StaleSeries

register = template.Library()

WIDTH = 600
HEIGHT = 140
# The plot area inside the view box: room on the left for the counts, below for the times.
LEFT, RIGHT, TOP, BOTTOM = 34, 592, 20, 104

# Tick spacings to choose from, shortest first: the first that gives at most MAX_TIME_TICKS ticks is used.
TICK_STEPS = [dt.timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)]
MAX_TIME_TICKS = 6


@dataclass(frozen=True)
class Tick:
    position: float  # x for a time tick, y for a count tick
    label: str


@dataclass(frozen=True)
class StaleChart:
    """SVG polyline points, x right in time and y up in count, inside a WIDTH x HEIGHT view box, with its axes."""

    points: str
    last_x: float
    last_y: float
    width: int
    height: int
    time_ticks: list[Tick]
    count_ticks: list[Tick]
    zone: str
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM


def x_of(moment: dt.datetime, start: dt.datetime, end: dt.datetime) -> float:
    span = max((end - start).total_seconds(), 1.0)
    return LEFT + (moment - start).total_seconds() / span * (RIGHT - LEFT)


def y_of(count: float, peak: int) -> float:
    return BOTTOM - count * (BOTTOM - TOP) / max(peak, 1)


def time_ticks(start: dt.datetime, end: dt.datetime) -> list[Tick]:
    """Ticks at round local times ("09:00", "09:30"), at most MAX_TIME_TICKS of them across [start, end]."""
    span = end - start
    step = next((step for step in TICK_STEPS if span / step <= MAX_TIME_TICKS), TICK_STEPS[-1])
    local = timezone.localtime(start)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    steps_in = -(-(local - midnight) // step)  # ceiling: the first round time at or after the start
    tick = midnight + steps_in * step
    ticks = []
    while tick <= end:
        ticks.append(Tick(round(x_of(tick, start, end), 1), f"{tick:%H:%M}"))
        tick += step
    return ticks


def count_ticks(peak: int) -> list[Tick]:
    """0, the peak, and the middle when it is a whole number of pods."""
    peak = max(peak, 1)
    counts = sorted({0, peak} | ({peak // 2} if peak >= 4 and peak % 2 == 0 else set()))
    return [Tick(round(y_of(count, peak), 1), str(count)) for count in counts]


@register.filter
def stale_chart(series: StaleSeries | None) -> StaleChart | None:
    if series is None or not series.values:
        return None
    peak = max(series.peak, 1)
    coordinates = [
        (LEFT + (bucket + 0.5) * (RIGHT - LEFT) / series.buckets, y_of(value, peak)) for bucket, value in series.values
    ]
    last_x, last_y = coordinates[-1]
    return StaleChart(
        " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates),
        last_x,
        last_y,
        WIDTH,
        HEIGHT,
        time_ticks(series.start, series.end),
        count_ticks(series.peak),
        timezone.localtime(series.end).tzname() or "",
    )
