"""What the cluster really does, measured: how long its kubelets take to refresh a volume, and when a probe
that failed is worth trying again. Pure: numbers and reasons in, decisions out; no I/O, no clock.

The kubelet rewrites a ConfigMap/Secret volume when its pod worker re-syncs the pod (every `syncFrequency`,
1 minute by default, plus up to 50% jitter), so a cluster's delays cluster around its own configuration.
Once Driftwatch has seen enough refreshes, "propagating" is judged against what it saw, not only against the
configured window: a volume 40 s behind on a kubelet that always refreshed within 20 s is late, not busy.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Fewer samples than this say too little about a cluster's kubelets; keep the configured window.
MIN_SAMPLES = 5
# The kubelet's jitter makes the next delay exceed the largest seen so far; 1.5x covers the 0-50% jitter on
# top of a whole sync period, the margin covers one snapshot cycle reading late and second-rounded times.
SPREAD_FACTOR = 1.5
MARGIN = timedelta(seconds=30)


@dataclass(frozen=True)
class RefreshDelays:
    """Observed delays from a source's change to the kubelet's new ``..data`` folder, newest first."""

    seconds: tuple[float, ...]

    @property
    def count(self) -> int:
        return len(self.seconds)

    @property
    def shortest(self) -> float:
        return min(self.seconds)

    @property
    def longest(self) -> float:
        return max(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def summary(self) -> str:
        """E.g. "volumes refreshed 25-72 s after a change (median 58 s, 14 seen)"."""
        if not self.seconds:
            return "no volume refresh seen yet"
        low, high, middle = round(self.shortest), round(self.longest), round(self.median)
        spread = f"{low} s" if low == high else f"{low}-{high} s"
        return f"volumes refreshed {spread} after a change (median {middle} s, {self.count} seen)"


def effective_window(delays: Sequence[float], configured: timedelta) -> timedelta:
    """The propagation window to judge volumes against: the configured one until ``MIN_SAMPLES`` delays were
    seen, then the longest seen x ``SPREAD_FACTOR`` + ``MARGIN``, never longer than the configured window.

    The configured window is an upper bound, not a floor: it is the operator's statement of how long a kubelet
    may take; measurements may only narrow it (a shorter `syncFrequency`), never stretch it (one pod stuck
    for ten minutes is stale, not propagating)."""
    if len(delays) < MIN_SAMPLES:
        return configured
    measured = timedelta(seconds=max(delays) * SPREAD_FACTOR) + MARGIN
    return min(configured, measured)


# --- retrying failed probes ------------------------------------------------------------------------------

# Reasons a probe gives (drift.snapshot.probing.run_probes) when it failed for a passing cause: the exec
# timed out, the connection to the API server or the kubelet broke, or the command lost its stream. The
# same container is likely to answer on a later cycle. Every other failure (forbidden, no shell, a file the
# container's user cannot read, a simulated node, file probes disabled) stays until the container changes.
TRANSIENT_REASON_PREFIXES = ("exec timed out", "exec interrupted")
RETRY_CAP = timedelta(minutes=30)


def is_transient(reason: str) -> bool:
    return reason.startswith(TRANSIENT_REASON_PREFIXES)


def retry_delay(failures: int, base: timedelta, cap: timedelta = RETRY_CAP) -> timedelta:
    """How long to wait after the ``failures``-th failure in a row: base, 2x, 4x ... up to ``cap``."""
    if failures < 1:
        return timedelta(0)
    return min(cap, base * 2 ** min(failures - 1, 30))


def retry_due(reason: str, failures: int, since_last_failure: timedelta, base: timedelta) -> bool:
    """Whether a container whose last ``failures`` probes failed (the last with ``reason``) is probed again now.

    ``base`` is the cluster's snapshot interval, so the retries come after 1, 2, 4, ... cycles. A little slack
    (a tenth of the base) keeps a cycle that starts a moment early from skipping a whole interval."""
    if not is_transient(reason):
        return False
    return since_last_failure + base / 10 >= retry_delay(failures, base)


# --- measuring a delay -----------------------------------------------------------------------------------

# The kubelet names its folder after the second it wrote it (truncated); a change time may carry fractions.
CLOCK_SLACK = timedelta(seconds=1)
# A "refresh" later than this after the last change is something else (a restarted kubelet, a clock jump).
LONGEST_BELIEVABLE = timedelta(hours=1)


def refresh_delay(written_at: datetime, volume_set_up_at: datetime | None, changes: Sequence[datetime]) -> float | None:
    """Seconds from the change a volume's ``..data`` folder (written at ``written_at``) reflects to that write.

    ``changes`` are the times the source's content changed (not its first sighting), in any order. The write
    reflects the last change at or before it; it measures a refresh only when the volume had been set up
    before that change (otherwise the kubelet merely set up a new pod's volume with current content)."""
    before = [change for change in changes if change <= written_at + CLOCK_SLACK]
    if not before:
        return None
    change = max(before)
    if volume_set_up_at is None or volume_set_up_at >= change:
        return None
    delay = max(timedelta(0), written_at - change)
    if delay > LONGEST_BELIEVABLE:
        return None
    return delay.total_seconds()
