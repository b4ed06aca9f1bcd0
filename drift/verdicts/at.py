"""Point in time, the pure part: was Driftwatch watching at a moment T, did a pod (or a container run) exist at
T, and what did a source hold at T. Plain data in, answers out: no ORM, no clock (the caller passes ``now``).

What is stored and what it says (drift.models): a pod's ``started_at`` is the API server's ``status.startTime``
(exact); its ``deleted_at`` and a container run's ``ended_at`` are the moment of the snapshot that no longer
listed it, so the real end lies between the last listing that still had it and that moment. A snapshot's
listing happens between its ``started_at`` and ``finished_at``: a pod deleted after the first snapshot that
finished after T was still listed by it, so it ran at T; one that vanished between the listings around T is
"not known", never a guess. Versions carry when their content appeared (``changed_at``, the API server's
managedFields time when it can be trusted), so what was current at T is the last version that had appeared by
T; verdicts at T are ``rules.judge`` with T as ``now``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

from drift.verdicts import rules

# How far into the future a moment may be asked for: none (what Driftwatch will see is not stored).
FUTURE_TOLERANCE = timedelta(seconds=5)


def allowed_gap(snapshot_interval_seconds: int) -> timedelta:
    """The longest time between two good snapshots in which Driftwatch still counts as watching: three
    intervals (a late or slow cycle, one failed cycle) plus a minute of scheduling."""
    return timedelta(seconds=3 * snapshot_interval_seconds + 60)


@dataclass(frozen=True)
class Run:
    """A finished good (succeeded or partial) snapshot: when it started and finished, what it could not read."""

    started_at: datetime
    finished_at: datetime
    forbidden_namespaces: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Coverage:
    """Whether Driftwatch watched the cluster at ``at``: ``known`` False with the sentence why not.
    ``before`` is the last good snapshot that started at or before T, ``after`` the first that started after."""

    at: datetime
    known: bool
    reason: str
    before: Run | None
    after: Run | None

    @property
    def forbidden_namespaces(self) -> frozenset[str]:
        return self.before.forbidden_namespaces if self.before else frozenset()


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.tzname() or ''}".rstrip()


def coverage(at: datetime, before: Run | None, after: Run | None, now: datetime, gap: timedelta) -> Coverage:
    """Watched at ``at`` when a good snapshot started at or before it and the next one (or now, when none came
    yet) followed within ``gap``."""
    if at > now + FUTURE_TOLERANCE:
        return Coverage(at, False, f"{_when(at)} is in the future: nothing is known of it yet", before, after)
    if before is None:
        first = f" (its first good snapshot: {_when(after.started_at)})" if after else " (no good snapshot yet)"
        return Coverage(at, False, f"not known: Driftwatch did not watch this cluster yet at {_when(at)}{first}",
                        before, after)  # fmt: skip
    following = after.finished_at if after else now
    if following - before.started_at > gap:
        until = f"the next at {_when(after.started_at)}" if after else "none since"
        return Coverage(
            at,
            False,
            f"not known: no good snapshot between {_when(before.started_at)} and {_when(following)} "
            f"({until}; at most {int(gap.total_seconds())} s apart count as watching)",
            before,
            after,
        )
    return Coverage(at, True, "", before, after)


class Presence(StrEnum):
    RAN = "ran"
    NOT_RAN = "not_ran"
    NOT_KNOWN = "not_known"


def presence(at: datetime, started_at: datetime | None, ended_at: datetime | None, after: Run | None) -> Presence:
    """Did a pod (or one run of a container) exist at ``at``? ``started_at``: when it started (a pod's
    ``status.startTime``, or when Driftwatch first saw it when the API gave none); ``ended_at``: when a snapshot
    first missed it (None: it still exists)."""
    if started_at is None or started_at > at:
        return Presence.NOT_RAN
    if started_at.microsecond == 0 and at - started_at < timedelta(seconds=1):
        # The API's times are whole seconds: a start in T's own second may have come after T.
        return Presence.NOT_KNOWN
    if ended_at is None:
        return Presence.RAN
    if ended_at <= at:
        return Presence.NOT_RAN
    # Missed by a snapshot after T: it ran at T only if a listing after T still had it.
    if after is not None and ended_at > after.finished_at:
        return Presence.RAN
    return Presence.NOT_KNOWN


def source_at(source: rules.Source, at: datetime) -> rules.Source:
    """The source as it stood at ``at``: the versions that had appeared by then (the last is current), a
    deletion only when it had happened by then."""
    versions = tuple(
        replace(version, deleted_at=None) if version.deleted_at is not None and version.deleted_at > at else version
        for version in source.versions
        if version.changed_at <= at
    )
    exists = bool(versions) and versions[-1].deleted_at is None
    return replace(source, versions=versions, exists=exists)


def current_at(versions: Sequence[rules.SourceVersion], at: datetime) -> rules.SourceVersion | None:
    """The version current at ``at`` (None: none had appeared, or the last was deleted by then)."""
    current = None
    for version in versions:
        if version.changed_at > at:
            break
        current = version
    if current is not None and current.deleted_at is not None and current.deleted_at <= at:
        return None
    return current


# An ISO 8601 moment is at most "2026-12-01T09:12:00.000000+05:30" (32 characters); more is not a moment.
MOMENT_MAX_LENGTH = 40
# How far back a moment may be asked for: further is a typo (year 202), never stored history.
EARLIEST_YEAR = 2000


def parse_moment(text: str, now: datetime, default_zone: tzinfo) -> datetime:
    """A moment from a URL or a command line (ISO 8601, e.g. 2026-12-01T09:12 or 2026-12-01T09:12:00Z; a moment
    without an offset is in ``default_zone``). ValueError with a sentence saying what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("Give a moment, e.g. 2026-12-01T09:12 (ISO 8601).")
    if len(text) > MOMENT_MAX_LENGTH:
        raise ValueError(f"A moment is at most {MOMENT_MAX_LENGTH} characters, e.g. 2026-12-01T09:12 (ISO 8601).")
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"{text!r} is not a moment: give one as 2026-12-01T09:12 (ISO 8601).") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_zone)
    if moment.year < EARLIEST_YEAR:
        raise ValueError(f"{text!r} is before {EARLIEST_YEAR}: Driftwatch stores nothing that old.")
    if moment > now + FUTURE_TOLERANCE:
        raise ValueError(f"{text!r} is in the future: point in time shows what was stored, up to now.")
    return moment
