"""The words Driftwatch uses, defined once: what kinds of object it reads and rolls out, how a container
consumes a source, and what it concludes. Models, rules, collection, rollouts, pages and templates all take
them from here, so a value spelled in one place is the value every other place compares against.

Plain enums (no Django): the pure rules import them too. Models turn them into field choices with
`choices()`."""

from __future__ import annotations

from enum import StrEnum


class SourceKind(StrEnum):
    """A source of configuration, as Kubernetes spells its kind."""

    CONFIG_MAP = "ConfigMap"
    SECRET = "Secret"

    @property
    def plural(self) -> str:
        """The resource name in API paths and in our URLs (configmaps, secrets)."""
        return _SOURCE_PLURALS[self]

    @classmethod
    def from_plural(cls, plural: str) -> SourceKind:
        """The kind a resource name stands for; ValueError for anything else."""
        for kind, resource in _SOURCE_PLURALS.items():
            if resource == plural:
                return kind
        raise ValueError(f"not a source resource: {plural!r}")


_SOURCE_PLURALS = {SourceKind.CONFIG_MAP: "configmaps", SourceKind.SECRET: "secrets"}


class WorkloadKind(StrEnum):
    """What owns pods, as Kubernetes spells its kind; a bare Pod is its own workload."""

    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"
    REPLICA_SET = "ReplicaSet"
    JOB = "Job"
    CRON_JOB = "CronJob"
    POD = "Pod"
    ROLLOUT = "Rollout"  # Argo Rollouts (argoproj.io/v1alpha1): its ReplicaSets own the pods

    @property
    def plural(self) -> str:
        """The resource name in API paths (deployments, statefulsets...)."""
        return self.value.lower() + "s"


class RolloutAction(StrEnum):
    """How Driftwatch restarts a workload's pods. Which kinds offer which is said by each kind
    (drift.rollout.kinds): that is also where ROLLABLE_KINDS comes from."""

    TEMPLATE = "template"  # patch the pod template's annotation: the controller replaces every pod
    EVICT = "evict"  # evict the stale pods only (Eviction API): their owner replaces them
    RUN_NOW = "run_now"  # a CronJob: create a Job from its jobTemplate now (drift.rollout.run_now), audited only


class Mode(StrEnum):
    """How a container consumes a source; decides whether the kubelet ever refreshes what it sees."""

    ENV = "env"
    ENV_FROM = "envFrom"
    VOLUME = "volume"
    SUBPATH = "subPath"
    PROJECTED = "projected"


# Read once when the container starts: only a new container sees a change.
ENV_MODES = (Mode.ENV, Mode.ENV_FROM)
# Rewritten by the kubelet some time after the source changes.
REFRESHED_MODES = (Mode.VOLUME, Mode.PROJECTED)


class Verdict(StrEnum):
    """PROPAGATING: behind, but within the window the kubelet needs to rewrite a volume; nothing to do yet.
    UNRELOADED: the volume's file is new on disk, but the container's processes started before it and are not
    known to re-read it (most applications read their config at start): a restart is the way to be sure."""

    FRESH = "fresh"
    PROPAGATING = "propagating"
    UNRELOADED = "unreloaded"
    STALE = "stale"
    MISSING = "missing"
    UNKNOWN = "unknown"


# Worst first: a pod's or a workload's verdict is the worst of its containers'.
VERDICT_ORDER = (
    Verdict.STALE, Verdict.MISSING, Verdict.UNRELOADED, Verdict.PROPAGATING, Verdict.UNKNOWN, Verdict.FRESH,
)  # fmt: skip

# The verdicts a restart cures: the container runs old config (stale), or its file is new on disk only.
RESTART_VERDICTS = (Verdict.STALE, Verdict.UNRELOADED)

# What a team lead reads for each verdict.
VERDICT_LABELS = {
    Verdict.FRESH: "fresh",
    Verdict.PROPAGATING: "propagating",
    Verdict.UNRELOADED: "new on disk only",
    Verdict.STALE: "stale",
    Verdict.MISSING: "missing",
    Verdict.UNKNOWN: "unknown",
}


# What a team lead reads on a row: why it is not fresh and what to do, per mode and verdict. Put together (with
# the kubelet's expected time for a propagating volume) by drift.verdicts.rules.advice; pages only show it.
RESTART_NEEDED = "restart needed"
WHY_STALE = {
    Mode.ENV: "env read at start",
    Mode.ENV_FROM: "env read at start",
    Mode.SUBPATH: "subPath never refreshed",
    Mode.VOLUME: "volume not refreshed within the kubelet's window",
    Mode.PROJECTED: "projected volume not refreshed within the kubelet's window",
}
WHY_UNRELOADED = "file new, app not known to reload"
WHY_MISSING = "source missing: create it or fix the reference"
WHY_UNKNOWN = "not known yet: see the workload page for why"
# "volume: the kubelet refreshes it by about 09:12 (median 30 s on this cluster)"
REFRESH_BY = "{mode}: the kubelet refreshes it by about {by}"
REFRESH_SOON = "{mode}: the kubelet refreshes it within its window"
REFRESH_MEDIAN = " (median {seconds} s on this cluster)"


class Reload(StrEnum):
    """Whether a container's processes take a rewritten config file without a restart."""

    HOT = "hot"  # they re-read it (a file watch, a reloader sidecar, or someone said so)
    RESTART = "restart"  # they keep what they read at start until restarted
    UNKNOWN = "unknown"


# The pod-template annotation that declares it: `driftwatch.io/reload: hot|restart` for every container, or
# `driftwatch.io/reload.CONTAINER: hot|restart` for one (it wins over the pod-wide form).
RELOAD_ANNOTATION = "driftwatch.io/reload"


class PickUp(StrEnum):
    """How a container run took up a version of a source ("what did this change do?")."""

    STARTED_WITH = "started with it"  # the run started while it was current (env, subPath, a fresh volume)
    ON_DISK = "read it on disk"  # a probe saw its content in the run's volume (the kubelet rewrote the file)


class Trouble(StrEnum):
    """What went wrong with a pod soon after it took up a version."""

    RESTARTED = "restarted"  # a later run of the same container started (the kubelet restarted it)
    CRASHED = "crashed"  # a run ended with a failure (Error, OOMKilled, a non-zero exit) or is crash-looping


class EditEffect(StrEnum):
    """What an edit of a source would do to one consumer now, before anyone makes it (the source page says it)."""

    RESTART = "needs a restart"  # env, subPath, or a file the app reads only at start: only a new container sees it
    REFRESHES = "refreshes by itself"  # a volume the kubelet rewrites, read again by the app
    NEVER = "never"  # an immutable ConfigMap or Secret: it cannot be edited, and the kubelet never rewrites it


# What a team lead reads for each, put together by drift.verdicts.rules.edit_effect.
# (The badge shows the EditEffect; these say why.)
EDIT_RESTART_ENV = "env is read when the container starts"
EDIT_RESTART_SUBPATH = "a subPath file is never refreshed"
EDIT_RESTART_FILE = "the file refreshes {when}, but the app reads it only at start ({why})"
EDIT_REFRESHES = "{when}; the app re-reads it ({why})"
EDIT_NEVER = "{kind} {name} is immutable (the API server refuses edits): make a new one and roll out to it"
EDIT_IN_ABOUT = "in about {seconds} s (this cluster's median)"
EDIT_WITHIN = "within the kubelet's window (up to {seconds} s)"


class Evidence(StrEnum):
    """OBSERVED: read from the container or the API server. INFERRED: deduced from timestamps and the rules."""

    OBSERVED = "observed"
    INFERRED = "inferred"


class TimelineKind(StrEnum):
    """The kinds of entry a namespace's or workload's timeline lists (drift.timeline), as its filter names them."""

    VERSION = "version"  # a new version of a ConfigMap or Secret
    ROLLOUT = "rollout"  # a rollout Driftwatch was asked for
    RESTART = "restart"  # a restart Driftwatch did not make: `kubectl rollout restart`, Reloader
    POD_START = "pod-start"
    POD_END = "pod-end"
    TERMINATION = "termination"  # a container run ended (reason, exit code, restart count)
    VERDICT = "verdict"  # a consumption's verdict changed

    @property
    def label(self) -> str:
        return _TIMELINE_LABELS[self]


_TIMELINE_LABELS = {
    TimelineKind.VERSION: "config versions",
    TimelineKind.ROLLOUT: "Driftwatch rollouts",
    TimelineKind.RESTART: "other restarts",
    TimelineKind.POD_START: "pod starts",
    TimelineKind.POD_END: "pod ends",
    TimelineKind.TERMINATION: "container terminations",
    TimelineKind.VERDICT: "verdict changes",
}


def choices(enum: type[StrEnum]) -> list[tuple[str, str]]:
    """Django field choices for one of these enums: the value, shown as it is spelled."""
    return [(member.value, member.value) for member in enum]
