"""When a CronJob starts its next Job (which reads the configuration as it is then), from its `spec.schedule`,
`spec.timeZone` and `spec.suspend`. Pure: plain values in, a `NextRun` out.

The schedule is read with croniter (a well-kept parser: descriptors, names, steps, time zones and daylight
saving), limited to what Kubernetes' own parser accepts: five fields or a descriptor (@hourly...), no seconds
field, no "#" or "L". Without `spec.timeZone` the kube-controller-manager's own zone applies, which Driftwatch
cannot see: that is said, and UTC assumed (the zone of the controller manager's usual image). A schedule
Driftwatch cannot read is a clear "cannot tell", never a guessed time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

# The descriptors Kubernetes' parser (robfig/cron's standard parser) accepts; @every is a duration, not a time.
DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
ASSUMED_ZONE = "UTC"


@dataclass(frozen=True)
class NextRun:
    """The next scheduled start (`at`, aware), or why there is none (`suspended`) or none known (`unknown`)."""

    at: datetime | None = None
    zone: str = ""
    zone_assumed: bool = False
    suspended: bool = False
    unknown: str = ""  # why the next run cannot be told

    def words(self, shown_in: tzinfo) -> str:
        """What the workload page and the overview's advice say, the time shown in `shown_in` (the page's zone)."""
        if self.suspended:
            return "suspended: no next run (spec.suspend is true); its next Job will read the configuration then"
        if self.at is None:
            return f"next run: cannot tell ({self.unknown})"
        local = self.at.astimezone(shown_in)
        zone = f"; schedule in {self.zone}" + (", the controller manager's zone, assumed" if self.zone_assumed else "")
        return f"its next Job will read the current config at {local:%H:%M} ({local:%Y-%m-%d} {local:%Z}{zone})"


def next_run(schedule: str, time_zone: str | None, suspended: bool, now: datetime) -> NextRun:
    """The next time after `now` (aware) that `schedule` fires in `time_zone` (None: the controller manager's)."""
    if suspended:
        return NextRun(suspended=True)
    expression = " ".join(schedule.split())
    if not expression:
        return NextRun(unknown="the CronJob has no schedule")
    if expression.upper().startswith(("TZ=", "CRON_TZ=")):
        return NextRun(unknown="its schedule names a zone (TZ=), which Kubernetes no longer accepts: set spec.timeZone")
    fields = expression.split()
    if expression.startswith("@"):
        if expression.lower() not in DESCRIPTORS:
            return NextRun(unknown=f"{expression[:40]!r} is not a schedule Driftwatch can read")
    elif len(fields) != 5 or "#" in expression:
        return NextRun(unknown=f"{expression[:60]!r} is not a five-field cron schedule")
    zone_name = time_zone or ASSUMED_ZONE
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return NextRun(unknown=f"unknown time zone {zone_name[:60]!r}")
    try:
        at = croniter(expression.lower() if expression.startswith("@") else expression, now.astimezone(zone)).get_next(
            datetime
        )
    except (CroniterError, ValueError, KeyError) as error:
        reason = "it never fires" if "find next date" in str(error) else "Driftwatch cannot read it"
        return NextRun(unknown=f"{expression[:60]!r}: {reason}")
    return NextRun(at=at, zone=zone_name, zone_assumed=not time_zone)


def of_cron_job(spec: dict, now: datetime) -> NextRun:
    """The next run of a CronJob from its spec as the API server returns it."""
    return next_run(str(spec.get("schedule") or ""), spec.get("timeZone"), bool(spec.get("suspend")), now)
