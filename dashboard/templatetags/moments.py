"""Time as a team lead reads it: relative ("3 s ago", "in 2 min", "for 12 min"), with the absolute time and its zone
on hover, in a <time> element. Every page's times go through the ``moment`` filter, so they all read alike."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def span(seconds: float) -> str:
    """A length of time in its largest useful unit: "3 s", "12 min", "2 h 5 min", "3 days"."""
    whole = int(abs(seconds))
    if whole < MINUTE:
        return f"{whole} s"
    if whole < HOUR:
        return f"{whole // MINUTE} min"
    if whole < DAY:
        hours, rest = divmod(whole, HOUR)
        minutes = rest // MINUTE
        return f"{hours} h {minutes} min" if minutes and hours < 6 else f"{hours} h"
    days = whole // DAY
    return f"{days} day{'s' if days != 1 else ''}"


def relative(moment: dt.datetime, now: dt.datetime, style: str = "") -> str:
    """``moment`` against ``now``: "3 s ago" or "in 30 s"; style "for": only the span since ("12 min", as in
    "stale for 12 min"). Under a second either way is "just now" ("for 0 s" with style "for")."""
    seconds = (now - moment).total_seconds()
    if style == "for":
        return span(max(seconds, 0))
    if abs(seconds) < 1:
        return "just now"
    return f"{span(seconds)} ago" if seconds > 0 else f"in {span(seconds)}"


def absolute(moment: dt.datetime) -> str:
    """In the server's time zone (settings.TIME_ZONE), with the zone named: "2026-12-01 09:10:23 UTC"."""
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()


@register.filter
def moment(value: dt.datetime | None, style: str = "") -> SafeString | str:
    """``{{ pod.started_at|moment }}`` -> <time datetime="..." title="2026-12-01 09:10:23 UTC">3 s ago</time>;
    ``{{ since|moment:"for" }}`` -> "12 min". None gives "" (so ``|default:`` still applies). Escaped by
    format_html; nothing of the value is trusted."""
    if value is None or value == "":
        return ""
    shown = relative(value, timezone.now(), style)
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), absolute(value), shown)


@register.filter
def at(value: dt.datetime | None) -> str:
    """The absolute time with its zone as plain text, for where no markup may go (an SVG <title>, an attribute)."""
    return "" if value is None or value == "" else absolute(value)
