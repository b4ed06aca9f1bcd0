"""Rollout windows: pure arithmetic on (weekdays, start, end) spans, and the one question the rollout code asks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.utils import timezone

from drift.models import Cluster, RolloutWindow


@dataclass(frozen=True)
class Span:
    weekdays: str
    start: time
    end: time

    def is_open(self, moment: datetime) -> bool:
        """A span that crosses midnight belongs to the day it opened."""
        now = moment.time()
        if self.start < self.end:
            return str(moment.weekday()) in self.weekdays and self.start <= now < self.end
        today, yesterday = str(moment.weekday()), str((moment.weekday() - 1) % 7)
        return (today in self.weekdays and now >= self.start) or (yesterday in self.weekdays and now < self.end)


def next_opening(spans: list[Span], moment: datetime) -> datetime | None:
    """When the first span opens after `moment` (None: no span at all)."""
    candidates = []
    for span in spans:
        for days in range(8):
            day = (moment + timedelta(days=days)).date()
            if str(day.weekday()) not in span.weekdays:
                continue
            opening = datetime.combine(day, span.start, tzinfo=moment.tzinfo)
            if opening > moment:
                candidates.append(opening)
                break
    return min(candidates, default=None)


def closed_reason(cluster: Cluster, namespace: str, now: datetime | None = None) -> str | None:
    """None when a rollout may start now in the namespace; otherwise why not and when it may."""
    moment = timezone.localtime(now or timezone.now())
    windows = RolloutWindow.objects.filter(cluster=cluster, namespace__in=["", namespace])
    spans = [Span(window.weekdays, window.start, window.end) for window in windows]
    if not spans or any(span.is_open(moment) for span in spans):
        return None
    opening = next_opening(spans, moment)
    when = opening.strftime("%A %Y-%m-%d %H:%M %Z") if opening else "never (no weekday set)"
    return f"Outside the rollout windows of {cluster.name}/{namespace}: the next one opens {when}."
