"""Page geometry of the overview's SVG chart: where the points of a stale-pods series fall in the picture."""

from __future__ import annotations

from dataclasses import dataclass

from django import template

from dashboard.pages.overview import StaleSeries

register = template.Library()

WIDTH = 600
HEIGHT = 80


@dataclass(frozen=True)
class StaleChart:
    """SVG polyline points, x right in time and y up in count, inside a WIDTH x HEIGHT view box."""

    points: str
    last_x: float
    last_y: float
    width: int
    height: int


@register.filter
def stale_chart(series: StaleSeries | None) -> StaleChart | None:
    if series is None or not series.values:
        return None
    peak = max(series.peak, 1)
    coordinates = [
        ((bucket + 0.5) * WIDTH / series.buckets, HEIGHT - 2 - value * (HEIGHT - 4) / peak)
        for bucket, value in series.values
    ]
    last_x, last_y = coordinates[-1]
    return StaleChart(" ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates), last_x, last_y, WIDTH, HEIGHT)
