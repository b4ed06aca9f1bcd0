"""Table-driven tests for drift.verdicts.rules: every case states the exact verdict, evidence, versions and stale_since.

Time is in minutes from T0. Unless a row says otherwise the ConfigMap changed `level` at minute 10, the
container started at minute 0, "now" is minute 60 and the propagation window is 2 minutes.
"""

from datetime import UTC, datetime, timedelta

import pytest

from drift.verdicts.rules import (
    Consumer,
    Container,
    Evidence,
    Judgement,
    Mode,
    Probe,
    Reload,
    ReloadFacts,
    Source,
    SourceVersion,
    Verdict,
    judge,
    match_version,
    projection,
    projection_id,
    split_sources,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=2)

FRESH, PROPAGATING, STALE, MISSING, UNKNOWN, UNRELOADED = (
    Verdict.FRESH,
    Verdict.PROPAGATING,
    Verdict.STALE,
    Verdict.MISSING,
    Verdict.UNKNOWN,
    Verdict.UNRELOADED,
)
OBS, INF = Evidence.OBSERVED, Evidence.INFERRED


# --- builders ---------------------------------------------------------------------------------------------


def at(minutes: float | None) -> datetime | None:
    return None if minutes is None else T0 + timedelta(minutes=minutes)


def ver(rv, minute, uid="u1", deleted=None, **keys) -> SourceVersion:
    """A version: ver("200", 10, level="debug") -> resourceVersion 200, content appeared at minute 10."""
    return SourceVersion(rv, keys, at(minute), uid, at(deleted))


def cm(*versions, exists=True, immutable=False, watched=-1000, kind="ConfigMap") -> Source:
    return Source(kind, "app-config", exists, versions, immutable, at(watched))


def started(minute, *, name="app", init=False, running=True, pod=None, reload=None) -> Container:
    return Container(name, init, running, at(minute), at(pod), reload or ReloadFacts())


def use(mode, *keys, optional=False) -> Consumer:
    return Consumer(mode, keys, optional)


def seen(minute, written=None, watching=None, holds_earlier_file=False, **hashes) -> Probe:
    """An exec that worked at `minute` and read these hashes (None: the key is absent in the container)."""
    return Probe(
        at(minute), True, key_hashes=hashes, volume_written_at=at(written), watching=watching,
        holds_earlier_file=holds_earlier_file,
    )  # fmt: skip


def failed(minute, reason) -> Probe:
    return Probe(at(minute), False, reason)


def expect(verdict, evidence, running, current, stale=None) -> tuple:
    return verdict, evidence, running, current, at(stale)


def row(id, consumer, container, source, expected, *, probe=None, now=60, says=()):
    return pytest.param(consumer, container, source, probe, now, expected, says, id=id)


# --- fixtures of the table --------------------------------------------------------------------------------

V1 = ver("100", -60, level="info", color="red")
V2 = ver("200", 10, level="debug", color="red")  # level changes at minute 10
CHANGED = cm(V1, V2)
COLOR_ONLY = cm(V1, ver("200", 10, level="info", color="blue"))  # only color changes at minute 10

ENV = use(Mode.ENV, "level")
ENV_FROM = use(Mode.ENV_FROM)
VOLUME = use(Mode.VOLUME)
VOLUME_LEVEL = use(Mode.VOLUME, "level")  # volume with items: [level]
SUBPATH = use(Mode.SUBPATH, "level")
PROJECTED = use(Mode.PROJECTED)

BEFORE = started(0)  # started before the change at minute 10
AFTER = started(20)  # started after it

IMMUTABLE = cm(ver("100", -60, level="info"), immutable=True)
IMM_RECREATED = cm(
    ver("100", -60, "u1", deleted=9, level="info"),
    ver("200", 10, "u2", level="debug"),
    immutable=True,
)
IMM_RECREATED_SAME = cm(
    ver("100", -60, "u1", deleted=9, level="info"),
    ver("200", 10, "u2", level="info"),
    immutable=True,
)
RECREATED = cm(ver("100", -60, "u1", deleted=9, level="info"), ver("200", 10, "u2", level="debug"))

# deleted at minute 5 and recreated with the same content at 10; GAP_UNSEEN: deletion time not known
GAP = cm(ver("100", -60, "u1", deleted=5, level="info"), ver("200", 10, "u2", level="info"))
GAP_UNSEEN = cm(ver("100", -60, "u1", level="info"), ver("200", 10, "u2", level="info"))

# first seen at minute 30, after the container started
WATCHED_LATE = cm(ver("300", 30, level="info"), watched=30)
WATCHED_LATE_OLD_DATA = cm(ver("300", -10, level="info"), watched=30)  # managedFields says -10
WATCH_START_UNKNOWN = cm(ver("300", 30, level="info"), watched=None)
CREATED_LATER = cm(ver("300", 30, level="info"), watched=-100)  # watched all along: created at 30

# level: x at -60, y at -30, back to x at -10, z at 10
FLIP = cm(ver("A", -60, level="x"), ver("B", -30, level="y"), ver("A2", -10, level="x"), ver("C", 10, level="z"))
FLIP_BACK = cm(ver("A", -60, level="x"), ver("B", -30, level="y"), ver("A2", -10, level="x"))
# color changes at -30, level at 10
TWO_CHANGES = cm(
    ver("100", -60, level="info", color="red"),
    ver("150", -30, level="info", color="blue"),
    ver("200", 10, level="debug", color="blue"),
)

DELETED = cm(ver("100", -60, deleted=30, level="info"), exists=False)
DELETED_EARLY = cm(ver("100", -60, deleted=5, level="info"), exists=False)
DELETED_UNSEEN = cm(ver("100", -60, level="info"), exists=False)
NEVER_EXISTED = cm(exists=False, watched=-100)

NEVER = Container("app", init=False, running=False, started_at=None)


# --- the table --------------------------------------------------------------------------------------------

MODES_BEFORE_AFTER = [
    row("env/started-before-change", ENV, BEFORE, CHANGED, expect(STALE, INF, "100", "200", stale=10)),
    row("env/started-after-change", ENV, AFTER, CHANGED, expect(FRESH, INF, "200", "200")),
    row("envFrom/started-before-change", ENV_FROM, BEFORE, CHANGED, expect(STALE, INF, "100", "200", stale=10)),
    row("envFrom/started-after-change", ENV_FROM, AFTER, CHANGED, expect(FRESH, INF, "200", "200")),
    row("subPath/started-before-change", SUBPATH, BEFORE, CHANGED, expect(STALE, INF, "100", "200", stale=10)),
    row("subPath/started-after-change", SUBPATH, AFTER, CHANGED, expect(FRESH, INF, "200", "200")),
    row(
        "volume/started-before-change",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(UNRELOADED, INF, None, "200", stale=10),
        says=("beyond the 2m propagation window", "should have rewritten", "not known to reload", "restart"),
    ),
    row("volume/started-after-change", VOLUME, AFTER, CHANGED, expect(FRESH, INF, "200", "200"), says=("unchanged",)),
    row("projected/started-before-change", PROJECTED, BEFORE, CHANGED, expect(UNRELOADED, INF, None, "200", stale=10)),
    row("projected/started-after-change", PROJECTED, AFTER, CHANGED, expect(FRESH, INF, "200", "200")),
    row(
        "env/reason-names-start-and-change",
        ENV,
        BEFORE,
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
        says=(
            "env fixed at container start 2025-03-01 12:00:00 UTC",
            "ConfigMap app-config changed at 2025-03-01 12:10:00 UTC",
        ),
    ),
]

WINDOW_ROWS = [
    row("volume/1m-after-change", VOLUME, BEFORE, CHANGED, expect(PROPAGATING, INF, None, "200"), now=11),
    row("volume/started-exactly-at-change", VOLUME, started(10), CHANGED, expect(FRESH, INF, "200", "200"), now=11),
    row("env/started-exactly-at-change", ENV, started(10), CHANGED, expect(FRESH, INF, "200", "200")),
    row(
        "volume/1s-before-window-ends", VOLUME, BEFORE, CHANGED, expect(PROPAGATING, INF, None, "200"), now=12 - 1 / 60
    ),
    row("volume/exactly-at-window", VOLUME, BEFORE, CHANGED, expect(UNRELOADED, INF, None, "200", stale=10), now=12),
    row("projected/inside-window", PROJECTED, BEFORE, CHANGED, expect(PROPAGATING, INF, None, "200"), now=11.5),
    row("subPath/inside-window-is-stale", SUBPATH, BEFORE, CHANGED, expect(STALE, INF, "100", "200", stale=10), now=11),
    row("env/inside-window-is-stale", ENV, BEFORE, CHANGED, expect(STALE, INF, "100", "200", stale=10), now=11),
]

PROJECTION_ROWS = [
    row("env/only-other-key-changed", ENV, BEFORE, COLOR_ONLY, expect(FRESH, INF, "200", "200")),
    row("subPath/only-other-key-changed", SUBPATH, BEFORE, COLOR_ONLY, expect(FRESH, INF, "200", "200")),
    row(
        "volume-items/only-other-key-changed-inside-window",
        VOLUME_LEVEL,
        BEFORE,
        COLOR_ONLY,
        expect(FRESH, INF, "200", "200"),
        now=11,
    ),
    row(
        "volume-all-keys/other-key-inside-window",
        VOLUME,
        BEFORE,
        COLOR_ONLY,
        expect(PROPAGATING, INF, None, "200"),
        now=11,
    ),
    row(
        "envFrom/all-keys-so-any-change-counts",
        ENV_FROM,
        BEFORE,
        COLOR_ONLY,
        expect(STALE, INF, "100", "200", stale=10),
    ),
    row(
        "env/key-added-after-start",
        use(Mode.ENV, "extra", optional=True),
        BEFORE,
        cm(V1, ver("200", 10, level="info", color="red", extra="on")),
        expect(STALE, INF, "100", "200", stale=10),
    ),
    row(
        "env/key-absent-everywhere",
        use(Mode.ENV, "extra", optional=True),
        BEFORE,
        CHANGED,
        expect(FRESH, INF, "200", "200"),
    ),
    row(
        "env/two-keys-one-changed",
        use(Mode.ENV, "color", "level"),
        BEFORE,
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
    ),
    row(
        "env/stale-since-first-change-of-own-key",
        ENV,
        started(-45),
        TWO_CHANGES,
        expect(STALE, INF, "150", "200", stale=10),
    ),
    row("env/content-flipped-back-then-changed", ENV, BEFORE, FLIP, expect(STALE, INF, "A2", "C", stale=10)),
    row("env/started-before-flip-back", ENV, started(-40), FLIP_BACK, expect(FRESH, INF, "A2", "A2")),
    row(
        "secret/env",
        ENV,
        BEFORE,
        cm(V1, V2, kind="Secret"),
        expect(STALE, INF, "100", "200", stale=10),
        says=("Secret app-config",),
    ),
]

MISSING_ROWS = [
    row(
        "env/optional-deleted-after-start",
        use(Mode.ENV, "level", optional=True),
        BEFORE,
        DELETED,
        expect(MISSING, OBS, "100", None),
        says=("optional reference", "still runs its old values"),
    ),
    row(
        "env/required-deleted-after-start",
        ENV,
        BEFORE,
        DELETED,
        expect(MISSING, OBS, "100", None),
        says=("required reference", "still runs its old values"),
    ),
    row(
        "env/optional-deleted-unseen",
        use(Mode.ENV, "level", optional=True),
        BEFORE,
        DELETED_UNSEEN,
        expect(MISSING, OBS, None, None),
    ),
    row("env/required-deleted-unseen", ENV, BEFORE, DELETED_UNSEEN, expect(MISSING, OBS, "100", None)),
    row(
        "env/optional-started-after-delete",
        use(Mode.ENV, "level", optional=True),
        AFTER,
        DELETED_EARLY,
        expect(MISSING, OBS, None, None),
    ),
    row("volume/optional-deleted", use(Mode.VOLUME, optional=True), BEFORE, DELETED, expect(MISSING, OBS, None, None)),
    row(
        "envFrom/never-existed",
        use(Mode.ENV_FROM, optional=True),
        BEFORE,
        NEVER_EXISTED,
        expect(MISSING, OBS, None, None),
    ),
    row(
        "env/missing-never-started",
        ENV,
        NEVER,
        NEVER_EXISTED,
        expect(MISSING, OBS, None, None),
        says=("has not started",),
    ),
    row("env/missing-container-not-running", ENV, started(0, running=False), DELETED, expect(MISSING, OBS, None, None)),
]

UNKNOWN_ROWS = [
    row("env/never-started", ENV, NEVER, CHANGED, expect(UNKNOWN, INF, None, "200"), says=("never started",)),
    row("volume/never-started", VOLUME, NEVER, CHANGED, expect(UNKNOWN, INF, None, "200")),
    row("env/exists-without-versions", ENV, BEFORE, cm(), expect(UNKNOWN, INF, None, None)),
    row(
        "env/started-before-watch",
        ENV,
        BEFORE,
        WATCHED_LATE,
        expect(UNKNOWN, INF, None, "300"),
        says=("before Driftwatch watched",),
    ),
    row("env/before-watch-but-data-older", ENV, BEFORE, WATCHED_LATE_OLD_DATA, expect(FRESH, INF, "300", "300")),
    row("subPath/started-before-watch", SUBPATH, BEFORE, WATCHED_LATE, expect(UNKNOWN, INF, None, "300")),
    row("env/watch-start-unknown", ENV, BEFORE, WATCH_START_UNKNOWN, expect(UNKNOWN, INF, None, "300")),
    row("volume/started-before-watch-converged", VOLUME, BEFORE, WATCHED_LATE, expect(FRESH, INF, "300", "300")),
    row(
        "volume/started-before-watch-first-seen-recently",
        VOLUME,
        BEFORE,
        WATCHED_LATE,
        expect(PROPAGATING, INF, None, "300"),
        now=31,
    ),
    row(
        "env/required-but-created-after-start",
        ENV,
        BEFORE,
        CREATED_LATER,
        expect(UNKNOWN, INF, None, "300"),
        says=("required reference",),
    ),
    row(
        "env/optional-created-after-start",
        use(Mode.ENV, "level", optional=True),
        BEFORE,
        CREATED_LATER,
        expect(STALE, INF, None, "300", stale=30),
        says=("was absent then and changed at",),
    ),
    row(
        "env/optional-created-after-start-without-key",
        use(Mode.ENV, "other", optional=True),
        BEFORE,
        CREATED_LATER,
        expect(FRESH, INF, "300", "300"),
    ),
    row(
        "env/started-before-watch-probe-says-current",
        ENV,
        BEFORE,
        WATCHED_LATE,
        expect(FRESH, OBS, "300", "300"),
        probe=seen(40, level="info"),
    ),
]

IMMUTABLE_ROWS = [
    row("env/immutable-same-lineage", ENV, BEFORE, IMMUTABLE, expect(FRESH, INF, "100", "100")),
    row("volume/immutable-same-lineage", VOLUME, BEFORE, IMMUTABLE, expect(FRESH, INF, "100", "100")),
    row(
        "volume/immutable-recreated",
        VOLUME,
        BEFORE,
        IMM_RECREATED,
        expect(STALE, INF, "100", "200", stale=10),
        says=("immutable ConfigMap, never refreshed",),
    ),
    row(
        "volume/immutable-recreated-inside-window",
        VOLUME,
        BEFORE,
        IMM_RECREATED,
        expect(STALE, INF, "100", "200", stale=10),
        now=11,
    ),
    row("projected/immutable-recreated", PROJECTED, BEFORE, IMM_RECREATED, expect(STALE, INF, "100", "200", stale=10)),
    row("env/immutable-recreated", ENV, BEFORE, IMM_RECREATED, expect(STALE, INF, "100", "200", stale=10)),
    row(
        "volume/immutable-recreated-same-content", VOLUME, BEFORE, IMM_RECREATED_SAME, expect(FRESH, INF, "200", "200")
    ),
    row("volume/immutable-started-after-recreate", VOLUME, AFTER, IMM_RECREATED, expect(FRESH, INF, "200", "200")),
    row(
        "volume/immutable-restart-after-recreate-pod-before",
        VOLUME,
        started(20, pod=-30),
        IMM_RECREATED,
        expect(UNKNOWN, INF, None, "200"),
    ),
    row(
        "volume/immutable-pod-after-recreate",
        VOLUME,
        started(25, pod=20),
        IMM_RECREATED,
        expect(FRESH, INF, "200", "200"),
    ),
    row("volume/mutable-recreated", VOLUME, BEFORE, RECREATED, expect(UNRELOADED, INF, None, "200", stale=10)),
    row(
        "volume/mutable-recreated-inside-window",
        VOLUME,
        BEFORE,
        RECREATED,
        expect(PROPAGATING, INF, None, "200"),
        now=11,
    ),
]

INIT_AND_NOT_RUNNING_ROWS = [
    row(
        "init-env/changed-after-it-ran",
        ENV,
        started(0, init=True, running=False),
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
        says=("init container",),
    ),
    row(
        "init-volume/changed-after-it-ran",
        VOLUME,
        started(0, init=True, running=False),
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
    ),
    row(
        "init-env/changed-before-it-ran",
        ENV,
        started(20, init=True, running=False),
        CHANGED,
        expect(FRESH, INF, "200", "200"),
    ),
    row(
        "init-volume/still-running-not-refreshed",
        VOLUME,
        started(0, init=True),
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
    ),
    row(
        "not-running-env/changed-after-start",
        ENV,
        started(0, running=False),
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
        says=("container not running",),
    ),
    row(
        "not-running-volume/changed-after-start",
        VOLUME,
        started(0, running=False),
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
    ),
    row(
        "not-running-volume/changed-before-start",
        VOLUME,
        started(20, running=False),
        CHANGED,
        expect(FRESH, INF, "200", "200"),
    ),
]

RESTART_ROWS = [
    # the pod started long ago; the container restarted 30s after the change: its volume may still lag
    row(
        "subPath/restart-30s-after-change", SUBPATH, started(10.5, pod=-100), CHANGED, expect(UNKNOWN, INF, None, "200")
    ),
    row("subPath/restart-5m-after-change", SUBPATH, started(15, pod=-100), CHANGED, expect(FRESH, INF, "200", "200")),
    row("subPath/pod-set-up-before-change", SUBPATH, started(10.5, pod=9), CHANGED, expect(UNKNOWN, INF, None, "200")),
    row("subPath/pod-set-up-after-change", SUBPATH, started(10.5, pod=10), CHANGED, expect(FRESH, INF, "200", "200")),
    row(
        "subPath/restart-long-after-change",
        SUBPATH,
        started(30, pod=-100),
        TWO_CHANGES,
        expect(FRESH, INF, "200", "200"),
    ),
    row(
        "subPath/restart-mid-change-both-old",
        SUBPATH,
        started(10.5, pod=-100),
        cm(V1, ver("200", 10, level="debug"), ver("300", 20, level="trace")),
        expect(STALE, INF, None, "300", stale=20),
        says=("at the latest",),
    ),
    row(
        "subPath/required-restart-across-delete-and-same-content",
        SUBPATH,
        started(10.5, pod=-100),
        cm(ver("100", -60, "u1", deleted=9.5, level="info"), ver("200", 10, "u2", level="info")),
        expect(FRESH, INF, "200", "200"),
    ),
    row(
        "volume/restart-after-change-inside-window",
        VOLUME,
        started(10.5, pod=-100),
        CHANGED,
        expect(PROPAGATING, INF, None, "200"),
        now=11,
    ),
    # Without pod_started_at, started_at is taken as the pod's first start (documented on Container).
    row(
        "volume/no-pod-start-assumes-first-start",
        VOLUME,
        started(10.5),
        CHANGED,
        expect(FRESH, INF, "200", "200"),
        now=11,
    ),
]

GAP_ROWS = [
    row(
        "env/optional-started-while-deleted",
        use(Mode.ENV, "level", optional=True),
        started(7),
        GAP,
        expect(STALE, INF, None, "200", stale=10),
    ),
    row("env/required-started-while-deleted", ENV, started(7), GAP, expect(UNKNOWN, INF, None, "200")),
    row(
        "env/optional-started-before-delete-same-content",
        use(Mode.ENV, "level", optional=True),
        BEFORE,
        GAP,
        expect(FRESH, INF, "200", "200"),
    ),
    row(
        "env/optional-deletion-time-unknown",
        use(Mode.ENV, "level", optional=True),
        started(7),
        GAP_UNSEEN,
        expect(UNKNOWN, INF, None, "200"),
    ),
    row("env/required-deletion-time-unknown", ENV, started(7), GAP_UNSEEN, expect(FRESH, INF, "200", "200")),
    row(
        "volume/optional-recreated-same-content",
        use(Mode.VOLUME, optional=True),
        BEFORE,
        GAP,
        expect(PROPAGATING, INF, None, "200"),
        now=11,
    ),
    row("volume/required-recreated-same-content", VOLUME, BEFORE, GAP, expect(FRESH, INF, "200", "200"), now=11),
]

PROBE_ROWS = [
    row("env/probe-current", ENV, BEFORE, CHANGED, expect(FRESH, OBS, "200", "200"), probe=seen(20, level="debug")),
    row(
        "env/probe-old", ENV, BEFORE, CHANGED, expect(STALE, OBS, "100", "200", stale=10), probe=seen(20, level="info")
    ),
    row(
        "env/probe-unknown-content",
        ENV,
        BEFORE,
        CHANGED,
        expect(STALE, OBS, None, "200", stale=-60),
        probe=seen(20, level="trace"),
        says=("at the latest", "no version"),
    ),
    row(
        "env/probe-key-absent",
        ENV,
        BEFORE,
        CHANGED,
        expect(STALE, OBS, None, "200", stale=-60),
        probe=seen(20, level=None),
    ),
    row(
        "env/probe-only-other-key-changed",
        ENV,
        BEFORE,
        COLOR_ONLY,
        expect(FRESH, OBS, "200", "200"),
        probe=seen(20, level="info"),
    ),
    row(
        "envFrom/probe-all-keys",
        ENV_FROM,
        BEFORE,
        CHANGED,
        expect(FRESH, OBS, "200", "200"),
        probe=seen(20, level="debug", color="red", extra=None),
    ),
    row(
        "envFrom/probe-all-keys-old",
        ENV_FROM,
        BEFORE,
        CHANGED,
        expect(STALE, OBS, "100", "200", stale=10),
        probe=seen(20, level="info", color="red"),
    ),
    row(
        "volume/probe-old-inside-window",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(PROPAGATING, OBS, "100", "200"),
        probe=seen(11, level="info", color="red"),
        now=11,
    ),
    row(
        "volume/probe-old-after-window",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(STALE, OBS, "100", "200", stale=10),
        probe=seen(30, level="info", color="red"),
        now=30,
        says=("propagation window",),
    ),
    row(
        "volume/probe-old-exactly-at-window",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(STALE, OBS, "100", "200", stale=10),
        probe=seen(12, level="info", color="red"),
        now=12,
    ),
    row(
        "volume/probe-current",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(UNRELOADED, OBS, None, "200", stale=10),
        probe=seen(11, level="debug", color="red"),
        now=11,
    ),
    row(
        "volume/probe-unknown-content",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(STALE, OBS, None, "200", stale=-60),
        probe=seen(30, level="x"),
        now=30,
    ),
    row(
        "volume/probe-unknown-content-first-seen-recently",
        VOLUME_LEVEL,
        BEFORE,
        cm(ver("300", 29, level="info"), watched=29),
        expect(PROPAGATING, OBS, None, "300"),
        probe=seen(30, level="x"),
        now=30,
    ),
    row(
        "subPath/probe-old-inside-window",
        SUBPATH,
        BEFORE,
        CHANGED,
        expect(STALE, OBS, "100", "200", stale=10),
        probe=seen(11, level="info"),
        now=11,
    ),
    row(
        "volume/immutable-probe-old-inside-window",
        VOLUME_LEVEL,
        BEFORE,
        IMM_RECREATED,
        expect(STALE, OBS, "100", "200", stale=10),
        probe=seen(11, level="info"),
        now=11,
    ),
    row(
        "env/probe-forbidden-falls-back",
        ENV,
        BEFORE,
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
        probe=failed(20, "forbidden"),
        says=("not from the probe (forbidden): env fixed",),
    ),
    row(
        "volume/probe-no-shell-falls-back",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(PROPAGATING, INF, None, "200"),
        probe=failed(11, "no shell in image"),
        now=11,
        says=("not from the probe (no shell in image): ",),
    ),
    row(
        "env/probe-container-not-running",
        ENV,
        started(0, running=False),
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
        probe=failed(20, "container not running"),
        says=("container not running",),
    ),
    row(
        "env/probe-before-container-start",
        ENV,
        AFTER,
        CHANGED,
        expect(FRESH, INF, "200", "200"),
        probe=seen(5, level="info"),
        says=("predates the container's start",),
    ),
    row(
        "volume/probe-before-change",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(UNRELOADED, INF, None, "200", stale=10),
        probe=seen(5, level="info", color="red"),
        says=("predates the change",),
    ),
    row(
        "env/probe-missing-consumed-key",
        ENV,
        BEFORE,
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
        probe=seen(20, color="red"),
        says=("did not report key(s) level",),
    ),
    row(
        "env/probe-read-nothing",
        ENV_FROM,
        BEFORE,
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
        probe=seen(20),
        says=("read none",),
    ),
    row(
        "volume/probe-written-after-change",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(UNRELOADED, OBS, None, "200", stale=10.5),
        probe=seen(11, written=10.5),
        now=11,
    ),
    row(
        "volume/probe-written-before-change-after-window",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(STALE, OBS, None, "200", stale=10),
        probe=seen(30, written=0),
        now=30,
        says=("at the latest",),
    ),
    row(
        "volume/probe-written-before-change-inside-window",
        VOLUME,
        BEFORE,
        CHANGED,
        expect(PROPAGATING, OBS, None, "200"),
        probe=seen(11, written=0),
        now=11,
    ),
    row(
        "subPath/probe-written-only-is-not-enough",
        SUBPATH,
        BEFORE,
        CHANGED,
        expect(STALE, INF, "100", "200", stale=10),
        probe=seen(20, written=15),
    ),
]


# --- what the process runs: a volume's file is new on disk; do the container's processes run it? ---------------
# The ConfigMap changed at minute 10; the kubelet wrote the new content at 11 (``written``) where a probe says so.
DECLARED_HOT = ReloadFacts(declared=Reload.HOT, declared_by="annotation driftwatch.io/reload")
DECLARED_RESTART = ReloadFacts(declared=Reload.RESTART, declared_by="annotation driftwatch.io/reload")
SIDECAR = ReloadFacts(sidecar="configmap-reload")
RELOADER = ReloadFacts(restart_tool="Reloader")
DEFAULT_HOT = ReloadFacts(cluster_default=Reload.HOT)
CURRENT_READ = {"level": "debug", "color": "red"}


def process_row(id, expected, *, container=BEFORE, probe=None, now=60, says=(), consumer=VOLUME, source=CHANGED):
    return row(id, consumer, container, source, expected, probe=probe, now=now, says=says)


PROCESS_ROWS = [
    # 1. the container started after the content was on disk
    process_row(
        "process/started-after-kubelet-wrote",
        expect(FRESH, OBS, "200", "200"),
        container=started(11.5),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("after the kubelet wrote that content",),
    ),
    process_row(
        "process/restarted-inside-window-before-kubelet-wrote",
        expect(UNRELOADED, OBS, None, "200", stale=11),
        container=started(10.5, pod=0),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("file new on disk since 2025-03-01 12:11:00", "restart to be sure"),
    ),
    process_row(
        "process/restarted-inside-window-no-probe",
        expect(UNRELOADED, INF, None, "200", stale=10),
        container=started(10.5, pod=0),
        says=("at the latest (propagation window)",),
    ),
    process_row(
        "process/restarted-beyond-window",
        expect(FRESH, INF, "200", "200"),
        container=started(13, pod=0),
        says=("beyond the propagation window after the change",),
    ),
    process_row("process/pod-set-up-after-change", expect(FRESH, INF, "200", "200"), container=started(13, pod=12)),
    process_row(
        "process/kubelet-wrote-only-timestamp-after-start",
        expect(FRESH, OBS, "200", "200"),
        container=started(11.5, pod=0),
        probe=seen(20, written=11),
    ),
    # 2. observed in the container
    process_row(
        "process/inotify-watch-observed",
        expect(FRESH, OBS, "200", "200"),
        probe=seen(20, written=11, watching=True, **CURRENT_READ),
        says=("watches the volume (inotify)",),
    ),
    process_row(
        "process/no-watch-among-readable-processes",
        expect(UNRELOADED, OBS, None, "200", stale=11),
        probe=seen(20, written=11, watching=False, **CURRENT_READ),
        says=("no file watch seen",),
    ),
    process_row(
        "process/holds-earlier-file-observed",
        expect(STALE, OBS, None, "200", stale=11),
        probe=seen(20, written=11, holds_earlier_file=True, **CURRENT_READ),
        says=("holds the earlier file open",),
    ),
    process_row(
        "process/holds-earlier-file-beats-declared-hot",
        expect(STALE, OBS, None, "200", stale=11),
        container=started(0, reload=DECLARED_HOT),
        probe=seen(20, written=11, holds_earlier_file=True, **CURRENT_READ),
    ),
    process_row(
        "process/watch-beats-declared-restart",
        expect(FRESH, OBS, "200", "200"),
        container=started(0, reload=DECLARED_RESTART),
        probe=seen(20, written=11, watching=True, **CURRENT_READ),
    ),
    # 3. declared
    process_row(
        "process/declared-hot",
        expect(FRESH, INF, "200", "200"),
        container=started(0, reload=DECLARED_HOT),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("declared hot by annotation driftwatch.io/reload",),
    ),
    process_row(
        "process/declared-hot-inferred-file",
        expect(FRESH, INF, "200", "200"),
        container=started(0, reload=DECLARED_HOT),
    ),
    process_row(
        "process/declared-restart",
        expect(STALE, INF, None, "200", stale=11),
        container=started(0, reload=DECLARED_RESTART),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("declared restart", "restart needed"),
    ),
    process_row(
        "process/declared-restart-no-probe",
        expect(STALE, INF, None, "200", stale=10),
        container=started(0, reload=DECLARED_RESTART),
    ),
    process_row(
        "process/declared-beats-sidecar",
        expect(STALE, INF, None, "200", stale=11),
        container=started(0, reload=ReloadFacts(declared=Reload.RESTART, declared_by="alice", sidecar="k8s-sidecar")),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("declared restart by alice",),
    ),
    process_row(
        "process/declared-hot-beats-restart-tool",
        expect(FRESH, INF, "200", "200"),
        container=started(0, reload=ReloadFacts(declared=Reload.HOT, declared_by="bob", restart_tool="Reloader")),
    ),
    # 4. inferred from the pod
    process_row(
        "process/reloader-sidecar",
        expect(FRESH, INF, "200", "200"),
        container=started(0, reload=SIDECAR),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("config-reloader sidecar (configmap-reload)",),
    ),
    process_row(
        "process/restart-tool",
        expect(STALE, INF, None, "200", stale=11),
        container=started(0, reload=RELOADER),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("Reloader on the workload says the app needs a restart",),
    ),
    process_row(
        "process/sidecar-beats-restart-tool",
        expect(FRESH, INF, "200", "200"),
        container=started(0, reload=ReloadFacts(sidecar="configmap-reload", restart_tool="Reloader")),
    ),
    # a restart tool that has not restarted the pod well after the change: said, and the verdict expires then
    process_row(
        "process/restart-tool-late",
        expect(STALE, INF, None, "200", stale=11),
        container=started(0, reload=RELOADER),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("Reloader should have restarted this by 2025-03-01 12:16:00",),
    ),
    process_row(
        "env/restart-tool-late",
        expect(STALE, INF, "100", "200", stale=10),
        consumer=ENV,
        container=started(0, reload=RELOADER),
        says=("Reloader should have restarted this",),
    ),
    # Driftwatch installed after the change: the API server's time of the data (managedFields) says the content
    # came after the container started, so the file is new on disk, though Driftwatch saw no change itself.
    process_row(
        "process/changed-before-the-watch-but-after-the-start",
        expect(UNRELOADED, INF, None, "300", stale=10),
        container=BEFORE,
        source=cm(ver("300", 10, level="debug"), watched=30),
    ),
    # 5. the cluster's default
    process_row(
        "process/cluster-default-hot",
        expect(FRESH, INF, "200", "200"),
        container=started(0, reload=DEFAULT_HOT),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("cluster's default assumes",),
    ),
    process_row(
        "process/restart-tool-beats-cluster-default-hot",
        expect(STALE, INF, None, "200", stale=11),
        container=started(0, reload=ReloadFacts(restart_tool="Helm checksum/config", cluster_default=Reload.HOT)),
        probe=seen(20, written=11, **CURRENT_READ),
    ),
    process_row(
        "process/cluster-default-unknown",
        expect(UNRELOADED, OBS, None, "200", stale=11),
        probe=seen(20, written=11, **CURRENT_READ),
        says=("not known to reload",),
    ),
    process_row("projected/process-unknown", expect(UNRELOADED, INF, None, "200", stale=10), consumer=PROJECTED),
    # inside the window the file is not new yet: propagating, whatever the process does
    process_row(
        "process/declared-hot-inside-window",
        expect(PROPAGATING, INF, None, "200"),
        container=started(0, reload=DECLARED_HOT),
        now=11,
    ),
    process_row(
        "process/watching-but-file-old",
        expect(PROPAGATING, OBS, "100", "200"),
        now=11,
        probe=seen(11, written=1, watching=True, level="info", color="red"),
    ),
    # env, subPath and init containers are not changed by what is said of reloading
    process_row(
        "process/env-declared-hot-still-stale",
        expect(STALE, INF, "100", "200", stale=10),
        consumer=ENV,
        container=started(0, reload=DECLARED_HOT),
    ),
    process_row(
        "process/subPath-sidecar-still-stale",
        expect(STALE, INF, "100", "200", stale=10),
        consumer=SUBPATH,
        container=started(0, reload=SIDECAR),
    ),
    process_row(
        "process/subPath-watching-still-stale",
        expect(STALE, OBS, "100", "200", stale=10),
        consumer=SUBPATH,
        probe=seen(20, watching=True, level="info"),
    ),
]

CASES = (
    MODES_BEFORE_AFTER
    + WINDOW_ROWS
    + PROJECTION_ROWS
    + MISSING_ROWS
    + UNKNOWN_ROWS
    + IMMUTABLE_ROWS
    + INIT_AND_NOT_RUNNING_ROWS
    + RESTART_ROWS
    + GAP_ROWS
    + PROBE_ROWS
    + PROCESS_ROWS
)


@pytest.mark.parametrize(("consumer", "container", "source", "probe", "now", "expected", "says"), CASES)
def test_judge(consumer, container, source, probe, now, expected, says):
    result = judge(consumer, container, source, probe, at(now), WINDOW)
    assert (
        result.verdict,
        result.evidence,
        result.running_version,
        result.current_version,
        result.stale_since,
    ) == expected
    assert result.optional is consumer.optional
    assert result.reason
    # Pages print "<evidence>: <reason>" (the "inferred: inferred: forbidden"): a reason never repeats it.
    assert not result.reason.startswith(tuple(Evidence)), result.reason
    for fragment in says:
        assert fragment in result.reason
    if result.verdict is FRESH:  # fresh always names what it runs: the current version
        assert result.running_version == result.current_version is not None


def test_two_containers_of_one_pod_get_different_verdicts():
    """Same pod, same ConfigMap: the container restarted after the change runs the new value, the other not."""
    web, sidecar = started(0, name="web"), started(20, name="sidecar")
    old = judge(ENV, web, CHANGED, None, at(60), WINDOW)
    new = judge(ENV, sidecar, CHANGED, None, at(60), WINDOW)
    assert (old.verdict, old.running_version, old.stale_since) == (STALE, "100", at(10))
    assert (new.verdict, new.running_version, new.stale_since) == (FRESH, "200", None)


def test_missing_echoes_optional():
    result = judge(use(Mode.ENV, "level", optional=True), BEFORE, DELETED, None, at(60), WINDOW)
    assert result == Judgement(
        MISSING,
        OBS,
        result.reason,
        running_version="100",
        current_version=None,
        stale_since=None,
        optional=True,
    )


# --- match_version and projections ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consumer", "observed", "source", "rv"),
    [
        pytest.param(ENV, {"level": "info"}, COLOR_ONLY, "200", id="equal-projections-newest-wins"),
        pytest.param(ENV, {"level": "info"}, CHANGED, "100", id="old-version"),
        pytest.param(ENV, {"level": "nope"}, CHANGED, None, id="no-version"),
        pytest.param(ENV, {}, CHANGED, None, id="unreported-key-counts-as-absent"),
        pytest.param(use(Mode.ENV, "extra"), {"extra": None}, CHANGED, "200", id="absent-matches-absent"),
        pytest.param(
            ENV_FROM, {"level": "debug", "color": "red", "gone": None}, CHANGED, "200", id="all-keys-none-dropped"
        ),
        pytest.param(ENV_FROM, {"level": "debug"}, CHANGED, None, id="all-keys-missing-key-differs"),
        pytest.param(ENV, {"level": "x"}, FLIP, "A2", id="flip-newest-of-equal"),
    ],
)
def test_match_version(consumer, observed, source, rv):
    matched = match_version(consumer, observed, source)
    assert (matched.resource_version if matched else None) == rv


def test_projection_ignores_keys_not_consumed():
    assert projection(ENV, {"level": "a", "color": "b"}) == (("level", "a"),)
    assert projection(use(Mode.ENV, "level", "level"), {}) == (("level", None),)
    assert projection(ENV_FROM, {"b": "2", "a": "1", "c": None}) == (("a", "1"), ("b", "2"))


def test_projection_id_equal_for_same_consumed_content():
    before, after = COLOR_ONLY.versions
    assert projection_id(ENV, before) == projection_id(ENV, after)
    assert projection_id(ENV_FROM, before) != projection_id(ENV_FROM, after)


def test_versions_are_frozen_copies():
    hashes = {"level": "info"}
    version = SourceVersion("1", hashes, T0, "u1")
    hashes["level"] = "debug"
    assert version.key_hashes["level"] == "info"
    with pytest.raises(TypeError):
        version.key_hashes["level"] = "x"  # type: ignore[index]


# --- split_sources ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "split"),
    [
        pytest.param([], set(), id="empty"),
        pytest.param([("p1", "ConfigMap", "a", "v1"), ("p2", "ConfigMap", "a", "v1")], set(), id="same-content"),
        pytest.param(
            [("p1", "ConfigMap", "a", "v1"), ("p2", "ConfigMap", "a", "v2")],
            {("ConfigMap", "a")},
            id="two-pods-differ",
        ),
        pytest.param(
            [("p1", "ConfigMap", "a", "v1"), ("p1", "ConfigMap", "a", "v2")],
            set(),
            id="one-pod-two-containers-is-not-a-split",
        ),
        pytest.param(
            [("p1", "ConfigMap", "a", "v1"), ("p1", "ConfigMap", "a", "v2"), ("p2", "ConfigMap", "a", "v1")],
            {("ConfigMap", "a")},
            id="one-pod-mixed-and-another",
        ),
        pytest.param(
            [("p1", "ConfigMap", "a", "v1"), ("p2", "ConfigMap", "a", None)], set(), id="unknown-is-not-a-difference"
        ),
        pytest.param(
            [("p1", "ConfigMap", "a", "v1"), ("p2", "Secret", "a", "v2")],
            set(),
            id="kind-is-part-of-the-source",
        ),
        pytest.param(
            [
                ("p1", "ConfigMap", "a", "v1"),
                ("p2", "ConfigMap", "a", "v2"),
                ("p1", "Secret", "b", "s1"),
                ("p2", "Secret", "b", "s1"),
                ("p3", "Secret", "c", "x"),
                ("p4", "Secret", "c", "y"),
            ],
            {("ConfigMap", "a"), ("Secret", "c")},
            id="several-sources",
        ),
    ],
)
def test_split_sources(rows, split):
    assert split_sources(rows) == split


def test_split_sources_accepts_projection_ids():
    """Pods on resourceVersions 100 and 200 run the same config for `level` when only `color` changed."""
    ids = [projection_id(ENV, version) for version in COLOR_ONLY.versions]
    assert (
        split_sources([("p1", "ConfigMap", "app-config", ids[0]), ("p2", "ConfigMap", "app-config", ids[1])]) == set()
    )


@pytest.mark.parametrize(("consumer", "container", "source", "probe", "now", "expected", "says"), CASES)
def test_changes_at_is_the_only_moment_the_clock_changes_a_verdict(
    consumer, container, source, probe, now, expected, says
):
    """A stored verdict is trusted until `changes_at`: up to that moment the clock alone must not change it,
    and at that moment it must change (else storing would re-judge for nothing); None means never."""
    result = judge(consumer, container, source, probe, at(now), WINDOW)
    later = [at(now) + timedelta(seconds=s) for s in (1, 59, 61, 119, 121, 3600, 86400 * 365)]
    if result.changes_at is None:
        assert all(judge(consumer, container, source, probe, t, WINDOW).verdict is result.verdict for t in later)
        return
    assert result.verdict is PROPAGATING
    before = result.changes_at - timedelta(microseconds=1)
    assert judge(consumer, container, source, probe, before, WINDOW).verdict is PROPAGATING
    assert all(
        judge(consumer, container, source, probe, t, WINDOW).verdict is PROPAGATING
        for t in later
        if t < result.changes_at
    )
    turned = judge(consumer, container, source, probe, result.changes_at, WINDOW)
    assert turned.verdict is not PROPAGATING
    assert turned.changes_at is None


def test_a_restart_tool_is_not_blamed_before_its_grace_and_the_verdict_expires_when_it_would_be():
    judged = judge(ENV, started(0, reload=RELOADER), CHANGED, None, at(12), WINDOW)
    assert judged.verdict == STALE
    assert "should have restarted" not in judged.reason
    assert judged.changes_at == at(15)
    late = judge(ENV, started(0, reload=RELOADER), CHANGED, None, at(15), WINDOW)
    assert "Reloader should have restarted this by 2025-03-01 12:15:00" in late.reason
    assert late.changes_at is None


def test_a_reason_names_a_version_by_its_number_with_the_resource_version_as_detail():
    """Pages name a version #N; a reason does too when the caller numbers the versions (drift.verdicts.facts does)."""
    from dataclasses import replace

    numbered = cm(replace(ver("100", -100, level="info"), number=1), replace(ver("200", 10, level="debug"), number=2))
    behind = judge(ENV, started(0), numbered, seen(20, level="info"), at(60), WINDOW)
    assert "read #1 (resourceVersion 100) of ConfigMap app-config" in behind.reason
    current = judge(ENV, started(20), numbered, seen(30, level="debug"), at(60), WINDOW)
    assert "the current content of ConfigMap app-config (#2, resourceVersion 200)" in current.reason
    unnumbered = judge(ENV, started(0), CHANGED, seen(20, level="info"), at(60), WINDOW)
    assert "resourceVersion 100 of ConfigMap app-config" in unnumbered.reason
