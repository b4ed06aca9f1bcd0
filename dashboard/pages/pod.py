"""The pod page: each env var and file a container gets from a source, against what the source holds now."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Max, Q

from dashboard.pages.version_links import is_service_account_ca
from drift import verdicts
from drift.diffs import DiffRow, SizeSummary, side_by_side, too_large
from drift.history import HistoryEntry, StartedWith, history, started_with
from drift.models import Cluster, Consumption, Observation, Pod, SourceVersion
from drift.verdicts import DriftRow, pod_verdicts
from drift.vocabulary import REFRESHED_MODES, Mode, SourceKind, Verdict

# Verdicts of a refreshed volume whose files on disk are the source's current content (the kubelet rewrote them;
# whether the processes took them is the verdict's business).
ON_DISK_NOW = (Verdict.FRESH, Verdict.UNRELOADED, Verdict.STALE)


@dataclass
class EffectiveEntry:
    """One environment variable or file a container gets from a source: what it runs against what the source
    holds now. Values are None for Secrets (never stored) and when the running version is unknown."""

    container: str
    what: str  # env or file
    name: str  # variable name or file path
    source_kind: str
    source_name: str
    key: str
    running_known: bool
    present_then: bool  # the key existed in the running version
    running: str | None
    current: str | None
    present_now: bool
    differs: bool | None  # None: unknown
    hidden: bool
    binary: bool
    rows: list[DiffRow]
    too_large: SizeSummary | None  # values past the diff caps: summarised, not diffed
    verdict: str
    evidence: str
    reason: str
    running_version: str | None
    current_version: str | None
    running_number: int | None = None  # the versions' numbers in the source's history (#N), when recorded
    current_number: int | None = None

    @property
    def multiline(self) -> bool:
        return "\n" in (self.running or "") or "\n" in (self.current or "")


@dataclass(frozen=True)
class StartedLine:
    """What one container started with from one source, by its start time (drift.history.started_with); for a
    volume the kubelet refreshes, also the version on disk now when that is a later one, and since when."""

    container: str
    source_kind: str
    source_name: str
    started_at: dt.datetime
    started: StartedWith
    reads: HistoryEntry | None = None
    reads_since: dt.datetime | None = None  # the kubelet's write of the volume, as a probe read it


@dataclass
class PodDetail:
    pod: Pod
    verdict: str
    entries: list[EffectiveEntry]
    service_account_rows: list[DriftRow]
    # "app started with ConfigMap env-config #1, written by alice@example.com via kubectl-patch 2 h ago"
    started_with: list[StartedLine] = field(default_factory=list)

    @property
    def env(self) -> list[EffectiveEntry]:
        return [entry for entry in self.entries if entry.what == "env"]

    @property
    def files(self) -> list[EffectiveEntry]:
        return [entry for entry in self.entries if entry.what == "file"]


def find_pod(cluster_name: str, namespace: str, name: str) -> Pod | None:
    """The live pod of that name, or the latest one that had it (a StatefulSet reuses names)."""
    pods = Pod.objects.select_related("cluster", "workload").filter(
        cluster__name=cluster_name, namespace=namespace, name=name
    )
    return pods.filter(deleted_at=None).first() or pods.order_by("-first_seen").first()


def pod_stamp(pod: Pod) -> str:
    """A version of what the pod page shows: it changes when a stored verdict of the cluster changes (or expires,
    or a snapshot finishes), when a version of a ConfigMap or Secret of the namespace is recorded, when a probe
    reads this pod again, or when the pod goes. "" when verdicts are judged at read time (no stamp to compare)."""
    cluster = verdicts.stamp([pod.cluster])
    if not cluster:
        return ""
    version = SourceVersion.objects.filter(source__cluster=pod.cluster, source__namespace=pod.namespace).aggregate(
        latest=Max("id")
    )["latest"]
    read = Observation.objects.filter(consumption__container__pod=pod).aggregate(latest=Max("id"))["latest"]
    gone = pod.deleted_at.timestamp() if pod.deleted_at else 0
    return f"{cluster}.{version or 0}.{read or 0}.{gone}"


def pod_detail(pod: Pod, now: dt.datetime | None = None) -> PodDetail:
    rows = [row for row in verdicts.rows(pod.cluster, pod.namespace, [pod.workload_id], now) if row.pod_id == pod.pk]
    verdict = pod_verdicts(rows).get((pod.cluster.name, pod.namespace, pod.name), Verdict.UNKNOWN)
    consumptions = {
        c.pk: c
        for c in Consumption.objects.filter(pk__in=[row.consumption_id for row in rows]).select_related("container")
    }
    versions = _versions_by_rv(pod.cluster, pod.namespace, rows)
    histories = {
        (row.source.kind, row.source.name): history(pod.cluster, pod.namespace, row.source.kind, row.source.name)
        for row in rows
        if not is_service_account_ca(row)
    }
    written = _volume_written_at([row.consumption_id for row in rows if row.mode in REFRESHED_MODES])
    entries: list[EffectiveEntry] = []
    service_account: list[DriftRow] = []
    started: dict[tuple[str, str, str, bool], StartedLine] = {}
    for row in rows:
        if is_service_account_ca(row):
            service_account.append(row)
            continue
        known = versions.get((row.source.kind, row.source.name), {})
        running = known.get(row.running_version or "")
        current = known.get(row.current_version or "")
        source_history = histories[(row.source.kind, row.source.name)]
        numbers = {entry.version.resource_version: entry.number for entry in source_history}
        effective = _effective(consumptions[row.consumption_id], row, running, current)
        for each in effective:
            each.running_number = numbers.get(row.running_version or "")
            each.current_number = numbers.get(row.current_version or "")
        entries.extend(effective)
        key = (row.container, row.source.kind, row.source.name, row.mode in REFRESHED_MODES)
        if row.container_started_at is not None and key not in started:
            started[key] = _started_line(row, source_history, written)
    return PodDetail(pod, verdict, entries, service_account, list(started.values()))


def _started_line(row: DriftRow, entries: list[HistoryEntry], written: dict[int, dt.datetime]) -> StartedLine:
    """By the container's start time, never by the content it runs now: content written again later would name
    a version the container never saw start (the issue's "started with #12", written an hour after the start)."""
    assert row.container_started_at is not None
    found = started_with(entries, row.container_started_at)
    line = StartedLine(row.container, row.source.kind, row.source.name, row.container_started_at, found)
    if row.mode not in REFRESHED_MODES or row.verdict not in ON_DISK_NOW:
        return line
    on_disk = next((entry for entry in entries if entry.version.resource_version == row.current_version), None)
    if on_disk is None or (found.entry is not None and on_disk.number == found.entry.number):
        return line
    return StartedLine(
        line.container, line.source_kind, line.source_name, line.started_at, found, on_disk,
        written.get(row.consumption_id),
    )  # fmt: skip


def _volume_written_at(consumption_ids: list[int]) -> dict[int, dt.datetime]:
    """The kubelet's last write of each volume, as its latest successful probe read it (the ..data link's time)."""
    latest = Observation.objects.filter(consumption_id__in=consumption_ids).latest_per_consumption()
    return {
        consumption_id: at
        for consumption_id, ok, at in latest.values_list("consumption_id", "ok", "volume_written_at")
        if ok and at is not None
    }


def _versions_by_rv(
    cluster: Cluster, namespace: str, rows: list[DriftRow]
) -> dict[tuple[str, str], dict[str, SourceVersion]]:
    """Only the versions the rows name (running and current), never a source's whole history with its data."""
    found: dict[tuple[str, str], dict[str, SourceVersion]] = defaultdict(dict)
    wanted = Q()
    for row in rows:
        named = {rv for rv in (row.running_version, row.current_version) if rv}
        if named:
            wanted |= Q(source__kind=row.source.kind, source__name=row.source.name, resource_version__in=named)
    if not wanted:
        return found
    for version in SourceVersion.objects.filter(
        wanted, source__cluster=cluster, source__namespace=namespace
    ).select_related("source"):
        found[(version.source.kind, version.source.name)][version.resource_version] = version
    return found


def _effective(
    consumption: Consumption, row: DriftRow, running: SourceVersion | None, current: SourceVersion | None
) -> list[EffectiveEntry]:
    """What the container sees of one consumption: (name, key) pairs, each with its running and current value."""
    keys_known = set(running.key_hashes if running else {}) | set(current.key_hashes if current else {})
    if consumption.mode == Mode.ENV:
        named = sorted(consumption.env_names.items())
        what = "env"
    elif consumption.mode == Mode.ENV_FROM:
        shadowed = set(consumption.shadowed_env)
        named = [
            (consumption.env_prefix + key, key)
            for key in sorted(keys_known)
            if consumption.env_prefix + key not in shadowed
        ]
        what = "env"
    elif consumption.mode == Mode.SUBPATH:
        key = (consumption.keys or [consumption.sub_path.split("/", 1)[0]])[0]
        named = [(consumption.mount_path, key)]
        what = "file"
    else:
        paths = consumption.paths or {key: key for key in sorted(keys_known)}
        named = [(f"{consumption.mount_path.rstrip('/')}/{path}", key) for path, key in sorted(paths.items())]
        what = "file"
    hidden = row.source.kind == SourceKind.SECRET
    entries = []
    for name, key in named:
        running_hash = running.key_hashes.get(key) if running else None
        current_hash = current.key_hashes.get(key) if current else None
        binary = key in ((running.binary_keys if running else []) + (current.binary_keys if current else []))
        running_value = None if hidden or running is None else running.data.get(key)
        current_value = None if hidden or current is None else current.data.get(key)
        differs = None if running is None else running_hash != current_hash
        rows: list[DiffRow] = []
        summary: SizeSummary | None = None
        if differs and not hidden and not binary and ("\n" in (running_value or "") or "\n" in (current_value or "")):
            summary = too_large(running_value or "", current_value or "")
            rows = [] if summary else side_by_side(running_value or "", current_value or "")
        entries.append(
            EffectiveEntry(
                container=row.container, what=what, name=name, source_kind=row.source.kind,
                source_name=row.source.name, key=key, running_known=running is not None,
                present_then=running_hash is not None,
                running=running_value, current=current_value, present_now=current_hash is not None,
                differs=differs, hidden=hidden, binary=binary, rows=rows, too_large=summary, verdict=row.verdict,
                evidence=row.evidence, reason=row.reason, running_version=row.running_version,
                current_version=row.current_version,
            )
        )  # fmt: skip
    return entries
