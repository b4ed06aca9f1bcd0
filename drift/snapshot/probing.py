"""Step 3 of a cycle: probe, through pods/exec, only what could have changed since it was last read, and
turn each answer into an observation on its own: one container's odd answer makes that consumption
unknown, with the reason, and leaves every other observation of the cycle standing."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from django.db.models import Exists, OuterRef, Q, Subquery

from drift import kube, probes
from drift.hashing import ValueHasher
from drift.models import Cluster, Consumption, Observation, SourceVersion
from drift.snapshot.listing import Listing
from drift.verdicts import refresh
from drift.vocabulary import ENV_MODES, REFRESHED_MODES, Mode

log = logging.getLogger(__name__)

# A volume is probed again while its source changed less than the propagation window plus this ago:
# long enough for one probe after the window even when a cycle runs late.
RECENT_CHANGE_MARGIN = timedelta(minutes=2)


class ProbeKind(StrEnum):
    """What a probe reads: a container's environment, or the files under one mount."""

    ENV = "env"
    FILES = "files"


@dataclass(frozen=True)
class ProbeTask:
    namespace: str
    pod: str
    container: str
    kind: ProbeKind
    consumption_ids: tuple[int, ...]
    mount_path: str = ""
    relative_paths: tuple[str, ...] = ()


@dataclass
class ProbeOutcome:
    task: ProbeTask
    output: str | None
    reason: str = ""
    boundary: str = ""  # of a file probe's records (drift.probes.FILES_SCRIPT)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A consumption that may need a probe, as plain values (thousands of rows after a mass change)."""

    pk: int
    container_pk: int
    mode: str
    source_kind: str
    source_name: str
    keys: list[str]
    paths: dict[str, str]
    mount_path: str
    container: str
    pod: str
    namespace: str
    node_name: str


@dataclass(frozen=True, slots=True)
class _LastRead:
    observed_at: datetime
    ok: bool
    key_hashes: dict[str, str | None]
    reason: str = ""
    failures: int = 0  # failed reads in a row, this one included

    def retry_due(self, now: datetime, base: timedelta) -> bool:
        """A read that failed for a passing reason is tried again, after 1, 2, 4 ... snapshot intervals."""
        return not self.ok and refresh.retry_due(self.reason, self.failures, now - self.observed_at, base)


# _Candidate's attribute -> the field it is read from.
_CANDIDATE_FIELDS = {
    "pk": "pk", "container_pk": "container_id", "mode": "mode", "source_kind": "source_kind",
    "source_name": "source_name", "keys": "keys", "paths": "paths", "mount_path": "mount_path",
    "container": "container__name", "pod": "container__pod__name", "namespace": "container__pod__namespace",
    "node_name": "container__pod__node_name",
}  # fmt: skip


# A lasting reason (never retried): the cluster was registered read-only, so no exec is even tried.
READ_ONLY = "read-only cluster: Driftwatch does not exec into its pods (verdict inferred from times)"


def consumer_pods(cluster_id: int, sources: Collection[tuple[str, str, str]]) -> set[int]:
    """The live pods of the cluster with a running container that consumes one of these (namespace, kind, name)
    sources: one query."""
    if not sources:
        return set()
    reads = Q()
    for namespace, kind, name in sources:
        reads |= Q(container__pod__namespace=namespace, source_kind=kind, source_name=name)
    return set(
        Consumption.objects.filter(
            reads, container__pod__cluster_id=cluster_id, container__pod__deleted_at=None, container__ended_at=None
        ).values_list("container__pod_id", flat=True)
    )


def plan_probes(
    cluster: Cluster, listing: Listing, now: datetime, pod_ids: Collection[int] | None = None
) -> tuple[list[ProbeTask], list[Observation]]:
    """Which containers to exec into, and the observations we can write without exec (simulated nodes).

    A container is probed when it has not been observed yet (a new run: env is fixed per run), and a
    volume consumer again when its source changed after the last observation, or its last read showed
    older content and the propagation window is not over yet. A read that failed for a passing reason
    (timeout, broken connection) is tried again with backoff (drift.verdicts.refresh.retry_due).

    `pod_ids`: only these pods' containers (the watcher's planner after pod events), instead of the cluster's."""
    window = timedelta(seconds=cluster.propagation_window_seconds)
    running = Consumption.objects.filter(
        container__pod__cluster=cluster, container__pod__deleted_at=None, container__ended_at=None,
        container__running=True,
    )  # fmt: skip
    if pod_ids is not None:
        running = running.filter(container__pod_id__in=list(pod_ids))
    # Only two kinds of consumer can need a probe, and both are found without loading the others:
    # never observed, or a volume whose source changed recently enough for the kubelet to be busy.
    observed = Exists(Observation.objects.filter(consumption=OuterRef("pk")))
    # Consumptions that ever failed for a passing reason: usually none, found with one join instead of a
    # correlated subquery per running consumption. _last_reads then decides from each one's last read.
    maybe_retry = set(
        Observation.objects.filter(consumption__in=running, ok=False)
        .filter(_any_prefix("reason", refresh.TRANSIENT_REASON_PREFIXES))
        .values_list("consumption_id", flat=True)
        .distinct()
    )
    recently_changed = _recently_changed_sources(cluster, now - window - RECENT_CHANGE_MARGIN)
    # Narrowed by name and namespace in SQL, then exactly by (namespace, kind, name) here. Of those, SQL keeps
    # only a volume whose last read could still call for another (_volume_needs_probe decides the rest): none
    # yet, one that read content (it may still be behind), or a failed one older than the latest of these
    # changes (a bound on its own source's: it keeps more, never fewer). A failed read after the change settles
    # it, as _volume_needs_probe says; one to retry comes via maybe_retry. Without this, right after many
    # sources change every volume consumer was loaded with its last read.
    last_read = Observation.objects.filter(consumption=OuterRef("pk")).order_by("-observed_at", "-id")
    changed_volumes = Q(
        mode__in=REFRESHED_MODES,
        source_name__in={name for _, _, name in recently_changed},
        container__pod__namespace__in={namespace for namespace, _, _ in recently_changed},
    ) & (Q(last_read_ok=True) | Q(last_read_at=None) | Q(last_read_at__lt=max(recently_changed.values(), default=now)))
    rows = (
        running.annotate(
            observed=observed,
            last_read_at=Subquery(last_read.values("observed_at")[:1]),
            last_read_ok=Subquery(last_read.values("ok")[:1]),
        )
        .filter(Q(observed=False) | changed_volumes | Q(pk__in=maybe_retry))
        .order_by("container_id", "id")
        .values_list("observed", *_CANDIDATE_FIELDS.values())
    )
    candidates: list[_Candidate] = []
    for was_observed, *values in rows:
        candidate = _Candidate(**dict(zip(_CANDIDATE_FIELDS, values, strict=True)))
        if (
            not was_observed
            or candidate.pk in maybe_retry
            or (candidate.namespace, candidate.source_kind, candidate.source_name) in recently_changed
        ):
            candidates.append(candidate)
    if not candidates:
        return [], []
    last_reads = _last_reads([candidate.pk for candidate in candidates])
    retry_base = timedelta(seconds=cluster.snapshot_interval_seconds)
    current = _current_versions(cluster)
    env_groups: dict[int, list[_Candidate]] = defaultdict(list)
    tasks: list[ProbeTask] = []
    immediate: list[Observation] = []
    for candidate in candidates:
        last = last_reads.get(candidate.pk)
        retry = last is not None and last.retry_due(now, retry_base)
        if candidate.mode in ENV_MODES:
            if (last is None or retry) and cluster.read_only:
                immediate.append(Observation(consumption_id=candidate.pk, observed_at=now, ok=False, reason=READ_ONLY))
            elif last is None or retry:
                env_groups[candidate.container_pk].append(candidate)
            continue
        version = current.get((candidate.namespace, candidate.source_kind, candidate.source_name))
        if not retry and not _volume_needs_probe(candidate.mode, last, version, window):
            continue
        skip_reason = _file_probe_skipped(cluster, candidate.node_name, listing)
        if skip_reason:
            immediate.append(Observation(consumption_id=candidate.pk, observed_at=now, ok=False, reason=skip_reason))
            continue
        if candidate.mode == Mode.SUBPATH:
            mount, _, file_name = candidate.mount_path.rpartition("/")
            mount, relative = mount or "/", [file_name]
        else:
            mount, relative = candidate.mount_path, _relative_paths(candidate, version)
        tasks.append(
            ProbeTask(
                candidate.namespace, candidate.pod, candidate.container, ProbeKind.FILES, (candidate.pk,),
                mount_path=mount, relative_paths=tuple(relative),
            )
        )  # fmt: skip
    for group in env_groups.values():
        first = group[0]
        tasks.append(ProbeTask(first.namespace, first.pod, first.container, ProbeKind.ENV, tuple(c.pk for c in group)))
    return tasks, immediate


def _any_prefix(field_name: str, prefixes: tuple[str, ...]) -> Q:
    condition = Q()
    for prefix in prefixes:
        condition |= Q(**{f"{field_name}__startswith": prefix})
    return condition


def _last_reads(consumption_ids: list[int]) -> dict[int, _LastRead]:
    """Each consumption's last read, with how many reads in a row failed (only counted for a failed one)."""
    last_reads = {
        consumption_id: _LastRead(observed_at, ok, key_hashes, reason)
        for consumption_id, observed_at, ok, key_hashes, reason in Observation.objects.filter(
            consumption_id__in=consumption_ids
        )
        .latest_per_consumption()
        .values_list("consumption_id", "observed_at", "ok", "key_hashes", "reason")
    }
    failing = [pk for pk, last in last_reads.items() if not last.ok and refresh.is_transient(last.reason)]
    streaks: dict[int, int] = defaultdict(int)
    broken: set[int] = set()
    for consumption_id, ok in (
        Observation.objects.filter(consumption_id__in=failing)
        .order_by("consumption_id", "-observed_at", "-id")
        .values_list("consumption_id", "ok")
    ):
        if ok:
            broken.add(consumption_id)
        elif consumption_id not in broken:
            streaks[consumption_id] += 1
    for pk in failing:
        last_reads[pk] = replace(last_reads[pk], failures=streaks[pk])
    return last_reads


def _file_probe_skipped(cluster: Cluster, node_name: str, listing: Listing) -> str:
    if cluster.read_only:
        return READ_ONLY
    if cluster.file_probes == Cluster.FileProbes.NEVER:
        return "file probes disabled for this cluster"
    if cluster.file_probes == Cluster.FileProbes.AUTO and node_name in listing.simulated_nodes:
        return "no files on simulated node"
    return ""


def _recently_changed_sources(cluster: Cluster, since: datetime) -> dict[tuple[str, str, str], datetime]:
    """(namespace, kind, name) of each source with a version first seen since then, and the latest such moment."""
    changed: dict[tuple[str, str, str], datetime] = {}
    for namespace, kind, name, first_seen in SourceVersion.objects.filter(
        source__cluster=cluster, first_seen__gte=since
    ).values_list("source__namespace", "source__kind", "source__name", "first_seen"):
        key = (namespace, kind, name)
        changed[key] = max(first_seen, changed.get(key, first_seen))
    return changed


def _current_versions(cluster: Cluster) -> dict[tuple[str, str, str], SourceVersion]:
    versions = (
        SourceVersion.objects.filter(source__cluster=cluster, source__deleted_at=None)
        .select_related("source")
        .defer("data")  # ConfigMap values can weigh a MiB each; probes compare hashes only
        .latest_per_source()
    )
    return {(v.source.namespace, v.source.kind, v.source.name): v for v in versions}


def _volume_needs_probe(mode: str, last: _LastRead | None, version: SourceVersion | None, window: timedelta) -> bool:
    if last is None:
        return True
    if version is None or mode == Mode.SUBPATH:
        return False  # a subPath file never changes once the container runs
    if last.observed_at < version.first_seen:
        return True
    if not last.ok:
        return False
    wanted = {key: version.key_hashes.get(key) for key in last.key_hashes}
    matches_current = wanted == last.key_hashes
    # Keep looking while the kubelet may still be rewriting the volume, and once just after the window.
    return not matches_current and last.observed_at < version.appeared_at() + window


def _relative_paths(candidate: _Candidate, version: SourceVersion | None) -> list[str]:
    if candidate.paths:
        return sorted(candidate.paths)
    keys = candidate.keys or sorted((version.key_hashes if version else {}).keys())
    return list(keys)


def run_probes(
    client: kube.KubeClient, tasks: list[ProbeTask], concurrency: int, timeout_seconds: float
) -> list[ProbeOutcome]:
    def probe(task: ProbeTask) -> ProbeOutcome:
        try:
            if task.kind == ProbeKind.ENV:
                try:
                    output = client.exec_in_container(
                        task.namespace, task.pod, task.container, probes.ENV_COMMAND, timeout_seconds
                    )
                except kube.ExecFailed:
                    output = client.exec_in_container(
                        task.namespace, task.pod, task.container, probes.ENV_FALLBACK_COMMAND, timeout_seconds
                    )
            else:
                boundary = probes.new_boundary()
                command = probes.files_command(task.mount_path, task.relative_paths, boundary)
                output = client.exec_in_container(task.namespace, task.pod, task.container, command, timeout_seconds)
                return ProbeOutcome(task, output, boundary=boundary)
            return ProbeOutcome(task, output)
        except kube.Forbidden as error:
            return ProbeOutcome(task, None, f"exec forbidden ({error.permission or 'create pods/exec'})")
        except kube.ExecTimeout:
            return ProbeOutcome(task, None, f"exec timed out after {timeout_seconds:g}s")
        except kube.NotFound:
            return ProbeOutcome(task, None, "pod gone before it could be read")
        except kube.Unreachable as error:
            return ProbeOutcome(task, None, f"exec interrupted: {str(error)[:200]}")
        except kube.ExecFailed as error:
            return ProbeOutcome(task, None, _exec_failure(str(error)))
        except kube.KubeError as error:
            return ProbeOutcome(task, None, f"exec failed: {str(error)[:200]}")
        except OSError as error:  # a connection reset while reading: the next cycle may well get through
            return ProbeOutcome(task, None, f"exec interrupted ({type(error).__name__})")
        except Exception as error:  # one container's odd answer must not end the cycle; its type is enough
            log.warning("probe of %s/%s failed: %s", task.namespace, task.pod, type(error).__name__)
            return ProbeOutcome(task, None, f"exec failed ({type(error).__name__})")

    if not tasks:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        return list(pool.map(probe, tasks))
    finally:
        # Interrupted (a soft time limit), do not wait for hanging execs: each ends at its own timeout.
        pool.shutdown(wait=False, cancel_futures=True)


# What the container runtime answers when the command to exec does not exist in the image (runc, crun).
_NO_COMMAND_SIGNS = ("executable file not found", "no such file or directory")


def _exec_failure(message: str) -> str:
    """An exec that ran and failed. An image without `sh` or `cat` (distroless, scratch, pause) cannot be
    read at all: say so plainly, since no retry will change it."""
    if any(sign in message.lower() for sign in _NO_COMMAND_SIGNS):
        return f"no shell in the container: exec could not start the probe's command ({message[:160]})"
    return f"exec failed: {message[:200]}"


def observations_from(
    cluster: Cluster, outcomes: list[ProbeOutcome], hasher: ValueHasher, now: datetime
) -> list[Observation]:
    ids = [cid for outcome in outcomes for cid in outcome.task.consumption_ids]
    consumptions = {c.pk: c for c in Consumption.objects.filter(pk__in=ids).select_related("container__pod")}
    known_keys = _known_keys(cluster)
    observations: list[Observation] = []
    for outcome in outcomes:
        for consumption_id in outcome.task.consumption_ids:
            consumption = consumptions[consumption_id]
            try:
                observation = _observation(consumption, outcome, known_keys, hasher, now)
            except Exception as error:  # never quote the output: it may hold Secret bytes
                reason = str(error) if isinstance(error, probes.ProbeOutputError) else type(error).__name__
                log.warning("probe output of %s unreadable: %s", consumption, reason)
                observation = Observation(
                    consumption=consumption, observed_at=now, ok=False, reason=f"unreadable probe output: {reason}"
                )
            observation.hash_key_id = hasher.key_id
            observations.append(observation)
    return observations


def _observation(
    consumption: Consumption,
    outcome: ProbeOutcome,
    known_keys: dict[tuple[str, str, str], set[str]],
    hasher: ValueHasher,
    now: datetime,
) -> Observation:
    if outcome.output is None:
        return Observation(consumption=consumption, observed_at=now, ok=False, reason=outcome.reason)
    source_key = (consumption.container.pod.namespace, consumption.source_kind, consumption.source_name)
    if outcome.task.kind == ProbeKind.ENV:
        expectation = probes.EnvExpectation(
            mode=consumption.mode, env_names=consumption.env_names, prefix=consumption.env_prefix,
            shadowed=frozenset(consumption.shadowed_env),
        )  # fmt: skip
        hashes = probes.observed_env_hashes(
            expectation, probes.parse_environ(outcome.output), known_keys.get(source_key, ()), hasher
        )
        return Observation(consumption=consumption, observed_at=now, ok=True, key_hashes=hashes)
    read = probes.parse_files_output(outcome.output, outcome.boundary)
    if read.swapped:  # a passing state: the next cycle reads one content (refresh.TRANSIENT_REASON_PREFIXES)
        reason = "exec interrupted: the kubelet swapped the volume's files during the read"
        return Observation(consumption=consumption, observed_at=now, ok=False, reason=reason)
    if read.unreadable:
        names = ", ".join(sorted(read.unreadable))[:200]
        return Observation(consumption=consumption, observed_at=now, ok=False, reason=f"file(s) unreadable: {names}")
    path_to_key = consumption.paths or {path: path for path in read.contents}
    hashes = {
        path_to_key.get(path, path): (hasher.value(text) if text is not None else None)
        for path, text in read.contents.items()
    }
    processes = read.processes
    return Observation(
        consumption=consumption, observed_at=now, ok=True, key_hashes=hashes,
        volume_written_at=read.data_dir_written_at, watching=processes.watching if processes else None,
        holds_earlier_file=processes.holds_earlier_file if processes else False,
    )  # fmt: skip


def _known_keys(cluster: Cluster) -> dict[tuple[str, str, str], set[str]]:
    keys: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for namespace, kind, name, key_hashes in SourceVersion.objects.filter(source__cluster=cluster).values_list(
        "source__namespace", "source__kind", "source__name", "key_hashes"
    ):
        keys[(namespace, kind, name)].update(key_hashes)
    return keys
