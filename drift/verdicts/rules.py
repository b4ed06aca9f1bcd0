"""Freshness rules: which configuration does a container run, and is it the current one?

Plain data in, verdicts out. This module does no I/O, reads no clock (the caller passes ``now``) and imports
nothing from Django, so every rule can be tested with a table of hand-made cases.

The Kubernetes facts the rules rest on:

* env vars taken from a ConfigMap/Secret (``env[].valueFrom``, ``envFrom``) are resolved when the container
  starts and never change until the container is recreated;
* a ConfigMap/Secret volume (and a ``projected`` volume) is rewritten by the kubelet some time after the object
  changes (up to about two minutes, the caller's ``propagation_window``);
* a ``subPath``/``subPathExpr`` mount is a bind mount of one file taken at container start: never refreshed;
* a new file on disk is not new config in the process: most applications read their config at start and keep
  it until restarted or signalled, so a rewritten volume is fresh only when the container started after the
  content appeared, or when something says its processes re-read it (``ReloadFacts``, strongest first);
* the kubelet stops watching an ``immutable`` object, so its volume keeps the content it was set up with, even
  when the object is deleted and recreated under the same name with other content.

The product's worst failure is saying "fresh" when the container runs old configuration, so every rule here
prefers ``UNKNOWN`` (always allowed) to a guess, and labels what it inferred as ``INFERRED``.

Datetimes must all be timezone-aware (or all naive); they are only compared, never read from a clock.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from drift import vocabulary
from drift.vocabulary import (
    ENV_MODES,
    REFRESHED_MODES,
    VERDICT_ORDER,
    EditEffect,
    Evidence,
    Mode,
    PickUp,
    Reload,
    Trouble,
    Verdict,
)

# A consumer's view of one content: sorted (key, hash) pairs, hash None when the key is absent.
Projection = tuple[tuple[str, str | None], ...]


def _frozen_mapping(value: Mapping[str, str | None]) -> Mapping[str, str | None]:
    """A read-only copy, so a frozen dataclass cannot change behind the caller's back."""
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class SourceVersion:
    """One distinct content of a ConfigMap/Secret within one lineage (same uid).

    ``changed_at`` is when this content appeared (the managedFields time of the data when known, else when
    Driftwatch first saw it). ``deleted_at`` is set on the last version of a lineage when Driftwatch saw the
    object deleted; None means "not deleted" or "deleted at an unknown time" (a new uid follows, or the source
    is absent now).
    """

    resource_version: str
    key_hashes: Mapping[str, str]
    changed_at: datetime
    uid: str
    deleted_at: datetime | None = None
    number: int = 0  # its place in the source's history (#N, as pages name it); 0: not numbered by the caller

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_hashes", _frozen_mapping(self.key_hashes))

    @property
    def named(self) -> str:
        """How a reason names it: "#2 (resourceVersion 35136)", or only the resourceVersion when not numbered."""
        return f"#{self.number} (resourceVersion {self.resource_version})" if self.number else self.in_parentheses

    @property
    def in_parentheses(self) -> str:
        """The same, for inside parentheses: "#2, resourceVersion 35136"."""
        number = f"#{self.number}, " if self.number else ""
        return f"{number}resourceVersion {self.resource_version}"


@dataclass(frozen=True)
class Source:
    """Everything known about one ConfigMap/Secret: versions oldest first, across lineages.

    When ``exists`` the last version is the current one. Content from before ``watched_since`` is unknown
    unless a version's ``changed_at`` says it was already there.
    """

    kind: str
    name: str
    exists: bool
    versions: tuple[SourceVersion, ...]
    immutable: bool = False
    watched_since: datetime | None = None


@dataclass(frozen=True)
class ReloadFacts:
    """What the pod and Driftwatch's settings say about whether a container's processes re-read a rewritten file
    (what the container itself was seen doing comes with the ``Probe``). Each is a sentence for the reason.

    ``declared``: the ``driftwatch.io/reload`` annotation or an operator's setting, with ``declared_by`` saying
    which. ``sidecar``: a known config-reloader container in the same pod (it signals the app). ``restart_tool``:
    Reloader, Wave or a Helm ``checksum/*`` annotation: the owner has said the app needs a restart.
    ``cluster_default``: what the cluster's settings assume for the rest.
    """

    declared: Reload = Reload.UNKNOWN
    declared_by: str = ""
    sidecar: str = ""
    restart_tool: str = ""
    cluster_default: Reload = Reload.UNKNOWN


@dataclass(frozen=True)
class Container:
    """One container of a pod.

    ``pod_started_at`` (the pod's ``status.startTime``) bounds when the pod's volumes were set up. Without it,
    ``started_at`` is taken to be the container's first start: right for a container that never restarted,
    optimistic for one that did (its subPath/immutable volume may predate ``started_at``). Pass it.
    """

    name: str
    init: bool
    running: bool
    started_at: datetime | None
    pod_started_at: datetime | None = None
    reload: ReloadFacts = field(default_factory=ReloadFacts)


@dataclass(frozen=True)
class Consumer:
    """One way one container consumes one source. ``keys == ()`` means every key (envFrom, volume without items)."""

    mode: Mode
    keys: tuple[str, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class Probe:
    """What an exec into the container read, already mapped to consumed keys and hashed by the caller.

    ``key_hashes`` maps a consumed key to the hash of what the container has (None: absent in the container).
    ``volume_written_at`` is the kubelet's ``..data`` timestamp of the volume, when it was read.
    ``watching``: a process of the container holds an inotify watch on the volume (True), none of the processes
    whose file descriptors the probe could read does (False), or they were not read (None). ``holds_earlier_file``:
    a process keeps a file of an earlier generation of the volume open (deleted since the kubelet swapped it).
    """

    observed_at: datetime
    ok: bool
    reason: str = ""
    key_hashes: Mapping[str, str | None] = field(default_factory=dict)
    volume_written_at: datetime | None = None
    watching: bool | None = None
    holds_earlier_file: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_hashes", _frozen_mapping(self.key_hashes))


@dataclass(frozen=True)
class Judgement:
    """The verdict for one consumer, with the evidence kind and one human sentence saying why.

    ``running_version`` is the newest version whose content (for the consumed keys) the container runs, None
    when not known. ``stale_since`` is set only for STALE, and for UNRELOADED (since when the file is new on disk
    while the process may run the old one); the reason says "at the latest" when it is an upper
    bound. ``optional`` echoes the consumer's flag. ``changes_at`` is the moment the verdict would change on the
    clock alone (a propagating volume's window ends), None when only new facts can change it: a stored verdict
    is valid until then.
    """

    verdict: Verdict
    evidence: Evidence
    reason: str
    running_version: str | None
    current_version: str | None
    stale_since: datetime | None
    optional: bool = False
    changes_at: datetime | None = None


# --- projections --------------------------------------------------------------------------------------------


def projection(consumer: Consumer, key_hashes: Mapping[str, str | None]) -> Projection:
    """The part of a content this consumer sees: only its keys (all keys when it names none).

    A key missing from ``key_hashes`` and a key mapped to None both count as absent, so a version and an
    observation compare equal exactly when the container would see the same thing.
    """
    if consumer.keys:
        return tuple((key, key_hashes.get(key)) for key in sorted(set(consumer.keys)))
    return tuple(sorted((key, value) for key, value in key_hashes.items() if value is not None))


def projection_id(consumer: Consumer, version: SourceVersion) -> str:
    """A short stable id of the consumer's projection of a version, for ``split_sources``.

    Two resourceVersions that differ only in keys this consumer does not read get the same id.
    """
    text = "\n".join(
        f"{key}={'' if value is None else value}" for key, value in projection(consumer, version.key_hashes)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def match_version(consumer: Consumer, observed: Mapping[str, str | None], source: Source) -> SourceVersion | None:
    """The newest version whose projection equals what was observed in the container, None when none does.

    Newest, because equal projections are the same configuration for this consumer and the newest one is the
    one that tells whether the container is behind. A consumed key the observation does not mention counts as
    absent; ``judge`` only calls this with a complete observation.
    """
    wanted = projection(consumer, observed)
    for version in reversed(source.versions):
        if projection(consumer, version.key_hashes) == wanted:
            return version
    return None


# --- workload-level ----------------------------------------------------------------------------------------


def split_sources(rows: Iterable[tuple[str, str, str, str | None]]) -> set[tuple[str, str]]:
    """Sources for which pods of one workload run different content ("split").

    ``rows`` are (pod, source_kind, source_name, running projection id or version) for the pods of ONE workload.
    A split needs two different pods running two different contents; an unknown content (None) never counts,
    because an unknown is not a difference, and two containers of one pod disagreeing is not a split of pods.
    """
    pods: dict[tuple[str, str], set[str]] = {}
    contents: dict[tuple[str, str], set[str]] = {}
    for pod, kind, name, running in rows:
        if running is None:
            continue
        pods.setdefault((kind, name), set()).add(pod)
        contents.setdefault((kind, name), set()).add(running)
    # With at least two pods and two contents among the known rows, some two rows differ in both.
    return {source for source, seen in contents.items() if len(seen) > 1 and len(pods[source]) > 1}


# --- the judgement -----------------------------------------------------------------------------------------


class _Gap(StrEnum):
    """A moment with no known version: the source was absent, or it predates what Driftwatch knows."""

    ABSENT = "absent"
    PREHISTORY = "prehistory"


_State = SourceVersion | _Gap


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.tzname() or ''}".rstrip()


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")
    return text or "0s"


@dataclass(frozen=True)
class _Case:
    """One judge() call's inputs, with the lookups every rule needs."""

    consumer: Consumer
    container: Container
    source: Source
    now: datetime
    window: timedelta

    @property
    def label(self) -> str:
        return f"{self.source.kind} {self.source.name}"

    @property
    def current(self) -> SourceVersion:
        return self.source.versions[-1]

    @property
    def started_at(self) -> datetime:
        assert self.container.started_at is not None  # judge() answers never-started containers first
        return self.container.started_at

    def proj(self, state: _State) -> Projection:
        if isinstance(state, _Gap):
            return projection(self.consumer, {})
        return projection(self.consumer, state.key_hashes)

    def newest_with(self, wanted: Projection) -> SourceVersion | None:
        return next((v for v in reversed(self.source.versions) if self.proj(v) == wanted), None)

    def judgement(
        self,
        verdict: Verdict,
        evidence: Evidence,
        reason: str,
        running: SourceVersion | None = None,
        stale_since: datetime | None = None,
        changes_at: datetime | None = None,
    ) -> Judgement:
        exists = self.source.exists and bool(self.source.versions)
        return Judgement(
            verdict=verdict,
            evidence=evidence,
            reason=reason,
            running_version=running.resource_version if running else None,
            current_version=self.current.resource_version if exists else None,
            stale_since=stale_since if verdict in (Verdict.STALE, Verdict.UNRELOADED) else None,
            optional=self.consumer.optional,
            changes_at=changes_at,
        )


def judge(
    consumer: Consumer,
    container: Container,
    source: Source,
    probe: Probe | None,
    now: datetime,
    propagation_window: timedelta,
) -> Judgement:
    """Decide whether ``container`` runs the current content of ``source`` for this ``consumer``.

    Order matters: an absent source is an observed fact and explains a container that never started, so it
    comes first; then what cannot be known; then a usable probe, which beats any inference; then inference
    from timestamps, with a failed probe's reason kept in front so the reader knows why it is only inferred.
    """
    case = _Case(consumer, container, source, now, propagation_window)
    if not source.exists:
        return _judge_missing(case)
    if container.started_at is None:
        return case.judgement(Verdict.UNKNOWN, Evidence.INFERRED, f"container {container.name} has never started")
    if not source.versions:
        return case.judgement(Verdict.UNKNOWN, Evidence.INFERRED, f"{case.label} exists but no version is known")
    prefix = ""
    if probe is not None:
        problem = _probe_problem(case, probe)
        if problem is None:
            return _restart_tool_late(case, _judge_probe(case, probe))
        # Not "inferred: ...": pages print the evidence before the reason, which would say it twice.
        prefix = f"not from the probe ({problem}): "
    judgement = _infer_refreshed(case) if _is_refreshed(case) else _infer_fixed(case)
    return _restart_tool_late(case, replace(judgement, reason=prefix + judgement.reason))


# How long a restart tool (Reloader, Wave) may take to replace the pods after a change before Driftwatch says it
# should have: they act within seconds of seeing the change, a rollout of many replicas within minutes.
RESTART_TOOL_GRACE = timedelta(minutes=5)


def _restart_tool_late(case: _Case, judgement: Judgement) -> Judgement:
    """A pod still behind well after a change, on a workload whose owner enlisted a restart tool: say so, so a team
    lead looks at the tool (and a rule on stale workloads fires), not only at the pod."""
    tool = case.container.reload.restart_tool
    since = judgement.stale_since
    if not tool or since is None or judgement.verdict not in (Verdict.STALE, Verdict.UNRELOADED):
        return judgement
    due = since + RESTART_TOOL_GRACE
    if case.now < due:
        return replace(judgement, changes_at=min(filter(None, (judgement.changes_at, due))))
    return replace(judgement, reason=f"{judgement.reason}; {tool} should have restarted this by {_at(due)}")


def _is_refreshed(case: _Case) -> bool:
    """Only a mutable volume of a running app container follows the source; everything else is fixed."""
    return (
        case.container.running
        and not case.container.init
        and case.consumer.mode in REFRESHED_MODES
        and not case.source.immutable
    )


# --- timelines ---


def _lineage_ends_unseen(case: _Case, index: int) -> bool:
    """True when this version's lineage was deleted at a time Driftwatch does not know."""
    versions = case.source.versions
    version = versions[index]
    if version.deleted_at is not None:
        return False
    if index == len(versions) - 1:
        return not case.source.exists
    return versions[index + 1].uid != version.uid


def _states_at(case: _Case, moment: datetime) -> list[_State]:
    """What the source held at ``moment``: a version, absent, or unknown (before Driftwatch's history).

    After a lineage whose deletion time is unknown, an optional consumer may have seen the source absent; a
    required one cannot have started (env) or keeps the last files (volume), so for it the version stands.
    """
    index = -1
    for i, version in enumerate(case.source.versions):
        if version.changed_at > moment:
            break
        index = i
    if index < 0:
        watched = case.source.watched_since
        return [_Gap.ABSENT] if watched is not None and watched <= moment else [_Gap.PREHISTORY]
    version = case.source.versions[index]
    if version.deleted_at is not None and version.deleted_at <= moment:
        return [_Gap.ABSENT]
    if case.consumer.optional and _lineage_ends_unseen(case, index):
        return [version, _Gap.ABSENT]
    return [version]


def _states_between(case: _Case, earliest: datetime, latest: datetime) -> list[_State]:
    """Every state the source was in at some moment of [earliest, latest]."""
    moments = [earliest]
    for version in case.source.versions:
        moments += [t for t in (version.changed_at, version.deleted_at) if t is not None and earliest < t <= latest]
    states: list[_State] = []
    for moment in moments:
        states += [s for s in _states_at(case, moment) if s not in states]
    return states


def _current_since(case: _Case) -> datetime:
    """When the current projection appeared: the start of the trailing run of versions that look the same.

    An optional consumer's run breaks at a lineage change: while the object was gone the kubelet emptied the
    optional volume, so the recreated object has to propagate again even with the same content.
    """
    versions = case.source.versions
    wanted = case.proj(versions[-1])
    since = versions[-1]
    for older in reversed(versions[:-1]):
        if case.proj(older) != wanted or (case.consumer.optional and older.uid != since.uid):
            break
        since = older
    return since.changed_at


def _stale_since(case: _Case, running: Projection, after: datetime) -> datetime | None:
    """When the source last changed away from ``running`` (after ``after``): the start of the current gap."""
    since = None
    for version in case.source.versions:
        if case.proj(version) == running:
            since = None
        elif since is None and version.changed_at > after:
            since = version.changed_at
    return since


# --- inference ---


_NOUNS = {Mode.VOLUME: "volume", Mode.PROJECTED: "projected volume", Mode.SUBPATH: "subPath mount"}


def _noun(mode: Mode) -> str:
    return _NOUNS.get(mode, str(mode))


def _infer_refreshed(case: _Case) -> Judgement:
    """A mutable volume follows the source within the propagation window; inside it, say so."""
    changed = _current_since(case)
    set_up = case.container.pod_started_at or case.started_at
    noun = _noun(case.consumer.mode)
    if changed <= set_up:
        reason = f"{noun} set up at {_at(set_up)}; {case.label} unchanged for the consumed keys since {_at(changed)}"
        return case.judgement(Verdict.FRESH, Evidence.INFERRED, reason, running=case.current)
    # The oldest version's time may only be when Driftwatch first saw it: do not call that a change.
    changed_text = "got its current content" if changed > case.source.versions[0].changed_at else "was first seen"
    age = case.now - changed
    if age >= case.window:
        reason = (
            f"{case.label} {changed_text} at {_at(changed)}, {_span(age)} ago, beyond the {_span(case.window)} "
            f"propagation window: the kubelet should have rewritten the {noun} by now"
        )
        return _in_the_process(case, Evidence.INFERRED, reason, None, None)
    reason = (
        f"{case.label} {changed_text} at {_at(changed)}, {_span(age)} ago; the kubelet rewrites the {noun} "
        f"within {_span(case.window)}"
    )
    return case.judgement(Verdict.PROPAGATING, Evidence.INFERRED, reason, changes_at=changed + case.window)


def _capture(case: _Case) -> tuple[datetime, datetime, str]:
    """When the container took the content it runs, as an interval, and how to say it.

    env is resolved at the container's start. A file (subPath, the volume of an immutable source, or any volume
    of an init or stopped container) comes from the pod's volume: an immutable volume holds what was fetched
    when the pod's volumes were set up; a mutable one lags the source by up to the propagation window.
    """
    start = case.started_at
    pod_start = case.container.pod_started_at
    mode = case.consumer.mode
    who = "init container: " if case.container.init else ""
    if not case.container.running and not case.container.init:
        who = "container not running: "
    if mode in ENV_MODES:
        return start, start, f"{who}{mode} fixed at container start {_at(start)}"
    if case.source.immutable:
        text = f"{who}{_noun(mode)} of an immutable {case.source.kind}, never refreshed, set up by {_at(start)}"
        return (pod_start or start), start, text
    earliest = max(pod_start, start - case.window) if pod_start else start
    what = "subPath mount, never refreshed," if mode is Mode.SUBPATH else f"{_noun(mode)} content"
    return earliest, start, f"{who}{what} taken at container start {_at(start)}"


def _possible_states(case: _Case, earliest: datetime, latest: datetime) -> list[_State]:
    """The states the container may have taken its content from.

    A required reference cannot be taken from an absent source (env fails, a volume keeps its last files), so
    absence only counts for it when nothing else is possible, and then the records contradict the start.
    """
    states = _states_between(case, earliest, latest)
    if not case.consumer.optional and any(isinstance(state, SourceVersion) for state in states):
        states = [state for state in states if state is not _Gap.ABSENT]
    return states


def _infer_fixed(case: _Case) -> Judgement:
    """Content fixed when the container took it: compare what was current then with what is current now."""
    earliest, latest, said = _capture(case)
    states = _possible_states(case, earliest, latest)
    if _Gap.PREHISTORY in states:
        watched = case.source.watched_since
        since = f"from {_at(watched)}" if watched else "since an unknown time"
        reason = (
            f"{said}, before Driftwatch watched {case.label} ({since}) and before its oldest known version "
            f"({_at(case.source.versions[0].changed_at)}): the content it took is unknown"
        )
        return case.judgement(Verdict.UNKNOWN, Evidence.INFERRED, reason)
    if states == [_Gap.ABSENT] and not case.consumer.optional:
        reason = f"{said}, but {case.label} was absent then, which a required reference does not allow: content unknown"
        return case.judgement(Verdict.UNKNOWN, Evidence.INFERRED, reason)
    seen = {case.proj(state) for state in states}
    if len(seen) == 1:
        return _judge_known_content(case, seen.pop(), latest, said)
    if case.proj(case.current) in seen:
        if earliest == latest:
            doubt = "may have been deleted then (its deletion time is unknown)"
        else:
            doubt = f"changed between {_at(earliest)} and {_at(latest)}"
        reason = f"{said}; {case.label} {doubt}: the content it took is unknown"
        return case.judgement(Verdict.UNKNOWN, Evidence.INFERRED, reason)
    bound = max(s for p in seen if (s := _stale_since(case, p, latest)) is not None)
    reason = f"{said}; whichever content it took, {case.label} has changed since, at the latest at {_at(bound)}"
    return case.judgement(Verdict.STALE, Evidence.INFERRED, reason, stale_since=bound)


def _judge_known_content(case: _Case, running: Projection, taken: datetime, said: str) -> Judgement:
    running_version = case.newest_with(running)
    if running == case.proj(case.current):
        current = case.current.resource_version
        reason = f"{said}; {case.label} still has that content for the consumed keys (resourceVersion {current})"
        return case.judgement(Verdict.FRESH, Evidence.INFERRED, reason, running=running_version)
    since = _stale_since(case, running, taken)
    absent = "was absent then and " if running_version is None else ""
    reason = f"{said}; {case.label} {absent}changed at {_at(since or taken)}"
    return case.judgement(Verdict.STALE, Evidence.INFERRED, reason, running=running_version, stale_since=since)


# --- probes ---


def _probe_problem(case: _Case, probe: Probe) -> str | None:
    """Why a probe cannot be trusted for this consumer now, or None when it can.

    A refreshed volume's probe from before the current content appeared says nothing about now; a fixed
    consumer's probe stays true for as long as the container it read lives.
    """
    if not probe.ok:
        return probe.reason or "the probe failed, no reason given"
    if probe.observed_at < case.started_at:
        return f"exec at {_at(probe.observed_at)} predates the container's start at {_at(case.started_at)}"
    refreshed = _is_refreshed(case)
    if refreshed and probe.observed_at < (changed := _current_since(case)):
        return f"exec at {_at(probe.observed_at)} predates the change at {_at(changed)}"
    if not probe.key_hashes:
        if refreshed and probe.volume_written_at is not None:
            return None
        return "exec read none of the consumed keys"
    missing = [key for key in case.consumer.keys if key not in probe.key_hashes]
    if missing:
        return f"exec did not report key(s) {', '.join(sorted(set(missing)))}"
    return None


def _judge_probe(case: _Case, probe: Probe) -> Judgement:
    """What the container was seen to hold beats every inference."""
    if not probe.key_hashes:
        return _judge_written_at(case, probe)
    read = f"exec at {_at(probe.observed_at)} read"
    matched = match_version(case.consumer, probe.key_hashes, case.source)
    since: datetime | None
    if matched is None:
        since = case.source.versions[0].changed_at
        reason = (
            f"{read} content matching no version of {case.label} Driftwatch has seen, so not the current one; "
            f"{case.label} moved away from it at the latest at {_at(since)} (its oldest known version)"
        )
        return _behind(case, reason, None, since)
    if case.proj(matched) == case.proj(case.current):
        reason = f"{read} the current content of {case.label} ({matched.in_parentheses})"
        if not _is_refreshed(case):
            return case.judgement(Verdict.FRESH, Evidence.OBSERVED, reason, running=matched)
        return _in_the_process(case, Evidence.OBSERVED, reason, probe, matched)
    since = _stale_since(case, case.proj(matched), matched.changed_at)
    assert since is not None  # matched is the newest with its projection and differs from the current one
    reason = f"{read} {matched.named} of {case.label}; it changed at {_at(since)}"
    return _behind(case, reason, matched, since)


def _judge_written_at(case: _Case, probe: Probe) -> Judgement:
    """Without file hashes, the kubelet's ..data timestamp still tells whether it wrote after the change."""
    written = probe.volume_written_at
    assert written is not None  # _probe_problem lets an empty probe through only with a timestamp
    changed = _current_since(case)
    noun = _noun(case.consumer.mode)
    if written >= changed:
        reason = f"the kubelet rewrote the {noun} at {_at(written)}, after {case.label} changed at {_at(changed)}"
        return _in_the_process(case, Evidence.OBSERVED, reason, probe, case.current)
    reason = (
        f"the kubelet last wrote the {noun} at {_at(written)}, before {case.label} changed at {_at(changed)}, "
        "so it holds content replaced at the latest then"
    )
    return _behind(case, reason, None, changed)


def _behind(case: _Case, reason: str, running: SourceVersion | None, since: datetime) -> Judgement:
    """The container was seen behind: still within the window a volume is propagating, otherwise stale."""
    age = case.now - since
    window = _span(case.window)
    if not _is_refreshed(case):
        return case.judgement(Verdict.STALE, Evidence.OBSERVED, reason, running=running, stale_since=since)
    if age < case.window:
        reason += f"; {_span(age)} ago, within the {window} propagation window"
        return case.judgement(
            Verdict.PROPAGATING, Evidence.OBSERVED, reason, running=running, changes_at=since + case.window
        )
    reason += f"; {_span(age)} ago, beyond the {window} propagation window"
    return case.judgement(Verdict.STALE, Evidence.OBSERVED, reason, running=running, stale_since=since)


# --- what the process runs ---


def _in_the_process(
    case: _Case, evidence: Evidence, reason: str, probe: Probe | None, running: SourceVersion | None
) -> Judgement:
    """A refreshed volume holds the current content (observed, or inferred beyond the window): whether the
    container's processes run it too. Fresh when the container started after the content was on disk; otherwise
    what the container was seen doing, then what was declared, then what the pod suggests, then the cluster's
    default, strongest first; with none of them the file is new on disk only (UNRELOADED), never fresh."""
    running = running or case.current
    written = probe.volume_written_at if probe is not None else None
    started = _started_with_it(case, written)
    if started:
        return case.judgement(Verdict.FRESH, evidence, f"{reason}; {started}", running=running)
    if written is not None:
        on_disk = f"file new on disk since {_at(written)} (kubelet)"
    else:
        on_disk = f"file new on disk by {_at(_current_since(case) + case.window)} at the latest (propagation window)"
    new = f"{on_disk}, container {case.container.name} started {_at(case.started_at)}"
    since = written or _current_since(case)
    if probe is not None and probe.holds_earlier_file:
        said = f"{reason}; {new}, and a process still holds the earlier file open: it runs the old config"
        return case.judgement(Verdict.STALE, Evidence.OBSERVED, said, running=None, stale_since=since)
    if probe is not None and probe.watching:
        said = f"{reason}; a process in the container watches the volume (inotify): it picks changes up"
        return case.judgement(Verdict.FRESH, evidence, said, running=running)
    how, basis = process_reload(case.container.reload)
    if how is Reload.HOT:
        return case.judgement(Verdict.FRESH, Evidence.INFERRED, f"{reason}; {basis}", running=running)
    if how is Reload.RESTART:
        said = f"{reason}; {new}; {basis}: restart needed"
        return case.judgement(Verdict.STALE, Evidence.INFERRED, said, running=None, stale_since=since)
    said = f"{reason}; {new} and is not known to reload ({basis}): restart to be sure"
    # What the processes run is not known (what they read at start, or the new file): no running version.
    return case.judgement(Verdict.UNRELOADED, evidence, said, running=None, stale_since=since)


def _started_with_it(case: _Case, written: datetime | None) -> str:
    """Why the container's processes read the current content when they started, or "" when they may not have.

    The kubelet writes a volume before it starts the containers that mount it; a container that restarted while
    the volume was still old read the old file, so a change time alone proves nothing about a restart."""
    changed = _current_since(case)
    first = case.source.versions[0]
    watched = case.source.watched_since
    if changed == first.changed_at and (watched is None or changed >= watched):
        # Its first version, timed only by when Driftwatch first saw it (no managedFields time from before the
        # watch), with no change seen since: nothing says the file is newer than the container.
        return f"{case.label} has had that content since Driftwatch first saw it, and no change is known since"
    if written is not None and case.started_at >= written:
        return f"container started at {_at(case.started_at)}, after the kubelet wrote that content at {_at(written)}"
    pod_start = case.container.pod_started_at
    if pod_start is not None and changed <= pod_start:
        return f"the pod's volumes were set up at {_at(pod_start)}, with that content already there"
    if changed + case.window <= case.started_at:
        return f"container started at {_at(case.started_at)}, beyond the propagation window after the change"
    return ""


def process_reload(facts: ReloadFacts) -> tuple[Reload, str]:
    """What is known, short of watching the container, of whether its processes re-read a rewritten file, and
    why: declared (annotation or operator), a reloader sidecar, a restart tool on the owner, the cluster's
    default; strongest first."""
    if facts.declared is not Reload.UNKNOWN:
        return facts.declared, f"declared {facts.declared} by {facts.declared_by or 'its owner'}"
    if facts.sidecar:
        return Reload.HOT, f"a config-reloader sidecar ({facts.sidecar}) signals the app"
    if facts.restart_tool:
        return Reload.RESTART, f"{facts.restart_tool} on the workload says the app needs a restart"
    if facts.cluster_default is Reload.HOT:
        return Reload.HOT, "the cluster's default assumes apps reload their files"
    return Reload.UNKNOWN, "no file watch seen, nothing declared"


# --- missing ---


def _judge_missing(case: _Case) -> Judgement:
    """The source is gone: an observed fact. Say whether that is allowed, and what a fixed consumer still runs."""
    reference = "optional" if case.consumer.optional else "required"
    reason = f"{case.label} does not exist ({reference} reference)"
    running = None
    if case.container.started_at is None:
        reason += f"; container {case.container.name} has not started"
    elif case.container.running and not _is_refreshed(case) and case.source.versions:
        earliest, latest, _ = _capture(case)
        states = _possible_states(case, earliest, latest)
        if len(states) == 1 and isinstance(states[0], SourceVersion):
            running = case.newest_with(case.proj(states[0]))
            assert running is not None  # states[0] itself has that projection
            reason += (
                f"; the container started at {_at(latest)} while it existed and still runs its old values "
                f"({running.in_parentheses})"
            )
    return case.judgement(Verdict.MISSING, Evidence.OBSERVED, reason, running=running)


# --- before an edit: what it would do to each consumer ---


@dataclass(frozen=True)
class EditOutcome:
    """What an edit of a source would do to one consumer now (drift.vocabulary.EditEffect), in words."""

    effect: EditEffect
    text: str


def edit_effect(
    source: Source,
    consumer: Consumer,
    reload: ReloadFacts,
    watching: bool | None,
    median_seconds: float | None,
    window: timedelta,
) -> EditOutcome:
    """An edit of ``source`` as this consumer would meet it: never (immutable), a restart (env and subPath are
    fixed at start; a volume's file whose app is not known to re-read it, as ``process_reload`` and the last
    probe's ``watching`` say), or a refresh by itself in about the cluster's median measured delay (the kubelet's
    window when none was measured)."""
    if source.immutable:
        return EditOutcome(EditEffect.NEVER, vocabulary.EDIT_NEVER.format(kind=source.kind, name=source.name))
    if consumer.mode in ENV_MODES:
        return EditOutcome(EditEffect.RESTART, vocabulary.EDIT_RESTART_ENV)
    if consumer.mode is Mode.SUBPATH:
        return EditOutcome(EditEffect.RESTART, vocabulary.EDIT_RESTART_SUBPATH)
    when = (
        vocabulary.EDIT_IN_ABOUT.format(seconds=round(median_seconds))
        if median_seconds is not None
        else vocabulary.EDIT_WITHIN.format(seconds=round(window.total_seconds()))
    )
    if watching:
        how, why = Reload.HOT, "a process of it watches the volume"
    else:
        how, why = process_reload(reload)
    if how is Reload.HOT:
        return EditOutcome(EditEffect.REFRESHES, vocabulary.EDIT_REFRESHES.format(when=when, why=why))
    return EditOutcome(EditEffect.RESTART, vocabulary.EDIT_RESTART_FILE.format(when=when, why=why))


# --- what a change did: who took a version up, and what went wrong soon after ---


@dataclass(frozen=True)
class PickedUp:
    """When a container run took up a version, and how (drift.vocabulary.PickUp)."""

    at: datetime
    how: PickUp


def picked_up(
    consumer: Consumer, run_started_at: datetime | None, probes: Iterable[Probe], source: Source, index: int
) -> PickedUp | None:
    """Whether one container run took up ``source.versions[index]``, and when; None when nothing stored says so.

    A run takes up what was current when it started (env and subPath are fixed then; a volume is set up then):
    the version had appeared at or before the start, the next one had not, and its lineage was not deleted by
    then. A run that started earlier takes it up later only through a refreshed volume, and only a probe can
    say so: the first good read whose content is this version's, for this consumer's keys (at the kubelet's
    write time when the probe read it, else when the probe read it). ``run_started_at``: the run's start, or
    its pod's when the run never started (crash-looping), or when Driftwatch first saw it."""
    version = source.versions[index]
    following = source.versions[index + 1] if index + 1 < len(source.versions) else None
    until = following.changed_at if following is not None else None
    if run_started_at is not None and version.changed_at <= run_started_at:
        deleted = version.deleted_at is not None and version.deleted_at <= run_started_at
        if not deleted and (until is None or run_started_at < until):
            return PickedUp(run_started_at, PickUp.STARTED_WITH)
        return None
    if consumer.mode not in REFRESHED_MODES:
        return None
    wanted = projection(consumer, version.key_hashes)
    for probe in sorted(probes, key=lambda probe: probe.observed_at):
        if not probe.ok or probe.observed_at < version.changed_at:
            continue
        if projection(consumer, probe.key_hashes) == wanted:
            written = probe.volume_written_at
            return PickedUp(written if written and written >= version.changed_at else probe.observed_at,
                            PickUp.ON_DISK)  # fmt: skip
    return None


@dataclass(frozen=True)
class Run:
    """One run of one container (a new container id is a new run), as the pod status told it: when it started
    (None: never seen running), when Driftwatch first saw it, and how it ended when the status said so."""

    started_at: datetime | None
    first_seen: datetime
    termination_reason: str = ""  # OOMKilled, Error, Completed...
    exit_code: int | None = None
    finished_at: datetime | None = None
    waiting_reason: str = ""  # CrashLoopBackOff... as last seen while it was the container's latest run

    @property
    def began(self) -> datetime:
        return self.started_at or self.first_seen


@dataclass(frozen=True)
class TroubleSeen:
    """Something that went wrong with a container soon after it took a version up (drift.vocabulary.Trouble)."""

    at: datetime
    what: Trouble
    reason: str  # "Error, exit code 3", "CrashLoopBackOff"; "" when the status said nothing


def _ending(run: Run) -> str:
    parts = [run.termination_reason] if run.termination_reason else []
    if run.exit_code is not None:
        parts.append(f"exit code {run.exit_code}")
    return ", ".join(parts)


def _failed(run: Run) -> bool:
    if run.exit_code is not None:
        return run.exit_code != 0
    return bool(run.termination_reason) and run.termination_reason != "Completed"


def trouble_after(picked: datetime, runs: Iterable[Run], within: timedelta) -> list[TroubleSeen]:
    """What went wrong with one container (all its runs) in ``(picked, picked + within]``, in order: each run that
    ended with a failure (a crash), each later run that started (a restart, with how the run before it ended),
    and a crash loop seen in the window. A run that ended with exit code 0 (a rollout's SIGTERM, a Job's end)
    is no trouble; a run whose end Driftwatch only noticed (its pod gone) is none either."""
    ordered = sorted(runs, key=lambda run: run.began)
    end = picked + within
    found: list[TroubleSeen] = []
    for position, run in enumerate(ordered):
        if run.finished_at is not None and picked <= run.finished_at <= end and _failed(run):
            found.append(TroubleSeen(run.finished_at, Trouble.CRASHED, _ending(run)))
        if picked < run.began <= end:  # the run that took it up began at or before then: this one is a restart
            before = _ending(ordered[position - 1]) if position > 0 else ""
            found.append(TroubleSeen(run.began, Trouble.RESTARTED, before))
        if run.waiting_reason == "CrashLoopBackOff" and picked <= run.began <= end:
            found.append(TroubleSeen(run.began, Trouble.CRASHED, run.waiting_reason))
    return sorted(found, key=lambda seen: (seen.at, seen.what))


# --- what a team lead reads: why, and what to do ---


@dataclass(frozen=True)
class Advice:
    """Why a row is not fresh and what to do, in a team lead's words; ``restart``: a rollout is the cure (the page
    offers Roll out next to it)."""

    text: str
    restart: bool


def advice(
    mode: Mode | str, verdict: Verdict | str, refresh_by: datetime | None = None, median_seconds: float | None = None
) -> Advice | None:
    """The advice for one consumption's verdict (None when fresh). ``refresh_by``: the moment (in the reader's
    zone) the kubelet has rewritten a propagating volume by; ``median_seconds``: this cluster's measured median
    refresh delay, when one was seen. The words are drift.vocabulary's."""
    mode, verdict = Mode(mode), Verdict(verdict)
    if verdict is Verdict.FRESH:
        return None
    if verdict is Verdict.STALE:
        return Advice(f"{vocabulary.WHY_STALE[mode]} — {vocabulary.RESTART_NEEDED}", restart=True)
    if verdict is Verdict.UNRELOADED:
        return Advice(vocabulary.WHY_UNRELOADED, restart=True)
    if verdict is Verdict.PROPAGATING:
        noun = "volume" if mode is not Mode.PROJECTED else "projected volume"
        if refresh_by is not None:
            text = vocabulary.REFRESH_BY.format(mode=noun, by=refresh_by.strftime("%H:%M"))
        else:
            text = vocabulary.REFRESH_SOON.format(mode=noun)
        if median_seconds is not None:
            text += vocabulary.REFRESH_MEDIAN.format(seconds=round(median_seconds))
        return Advice(text, restart=False)
    if verdict is Verdict.MISSING:
        return Advice(vocabulary.WHY_MISSING, restart=False)
    return Advice(vocabulary.WHY_UNKNOWN, restart=False)


def workload_advice(
    modes: Mapping[str, Mapping[str, int]], refresh_by: datetime | None = None, median_seconds: float | None = None
) -> list[Advice]:
    """A workload's advice from its pods per mode and verdict (drift.verdicts.WorkloadSummary.modes): per mode,
    the worst verdict any of its pods has through it; each text once, those that need a restart first."""
    found: list[Advice] = []
    for mode in Mode:
        counts = modes.get(mode.value) or {}
        present = [verdict for verdict in VERDICT_ORDER if counts.get(verdict.value)]
        said = advice(mode, present[0], refresh_by, median_seconds) if present else None
        if said is not None and said not in found:
            found.append(said)
    return sorted(found, key=lambda said: not said.restart)


def restart_summary(restart_workloads_per_cluster: Iterable[int]) -> str:
    """The line across clusters: "3 workloads need a restart in 1 of 4 clusters" (one count per cluster shown)."""
    counts = list(restart_workloads_per_cluster)
    workloads, clusters = sum(counts), len(counts)
    where = sum(1 for count in counts if count)
    of = f"{clusters} cluster" + ("" if clusters == 1 else "s")
    if not workloads:
        return f"No workload needs a restart in {'' if clusters == 1 else 'any of '}{of}"
    need = "workload needs" if workloads == 1 else "workloads need"
    return f"{workloads} {need} a restart in {where} of {of}"
