"""What a restart will change for each pod, read from what Driftwatch stored (verdicts, source versions and who
wrote them), for the confirmation: per pod, per source it reads, the keys that differ between the version it runs
and the current one (values for ConfigMaps; key names only for Secrets, whose values are never stored), and who
made each change in between ("this also picks up bob's edit of db-secret at 09:12"). Reads only."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from drift import verdicts
from drift.diffs import key_diffs
from drift.history import history
from drift.models import Cluster, SourceVersion, Workload
from drift.verdicts.facts import DriftRow
from drift.vocabulary import SourceKind, Verdict

# The verdicts a restart fixes: the pod runs an old version (stale), or its file is new on disk but its
# processes read it at start (unreloaded). Missing sources, propagating volumes and unknowns are not restarted.
RESTART_FIXES = (Verdict.STALE, Verdict.UNRELOADED)


@dataclass(frozen=True)
class KeyChange:
    key: str
    status: str  # added, removed, changed
    before: str | None  # None: not shown (a Secret, a binary key, or a value too large)
    after: str | None


@dataclass(frozen=True)
class Change:
    """Who wrote one version between the one a pod runs and the current one, and when."""

    version: int
    resource_version: str
    author: str
    at: datetime

    def __str__(self) -> str:
        return f"version #{self.version} by {self.author} at {timezone.localtime(self.at):%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class SourcePreview:
    kind: str
    name: str
    running_version: str  # resourceVersion the pod runs ("" unknown)
    current_version: str
    keys: tuple[KeyChange, ...]
    changes: tuple[Change, ...]

    @property
    def values_shown(self) -> bool:
        return self.kind == SourceKind.CONFIG_MAP


@dataclass(frozen=True)
class PodPreview:
    name: str
    verdict: str
    sources: tuple[SourcePreview, ...]


def stored_pod_verdicts(workload: Workload) -> tuple[dict[str, str], dict[str, list[DriftRow]]]:
    """(pod name -> its worst stored verdict, pod name -> its rows), for the workload's live pods as last judged."""
    rows = [row for row in verdicts.rows(workload.cluster, workload.namespace, [workload.pk])]
    worst = verdicts.pod_verdicts(rows)
    by_pod: dict[str, list[DriftRow]] = defaultdict(list)
    for row in rows:
        by_pod[row.pod].append(row)
    return {pod: str(verdict) for (_, _, pod), verdict in worst.items()}, by_pod


def stored_workload(cluster: Cluster, kind: str, namespace: str, name: str) -> Workload | None:
    """The live Workload row Driftwatch stored for a workload (None: not seen yet, or gone)."""
    return Workload.objects.filter(cluster=cluster, kind=kind, namespace=namespace, name=name, deleted_at=None).first()


def preview_restart(
    workload: Workload | None, pods: list[str]
) -> tuple[tuple[PodPreview, ...], tuple[tuple[str, str], ...]]:
    """For a restart of `pods` (names): the preview of each pod a restart fixes (what changes for it, by source, and
    who changed it), and (name, verdict) of every other pod, fresh or not judged as stale: a full rollout restarts
    those anyway, the eviction action leaves them alone. Without a stored workload nothing is known of any pod."""
    if workload is None:
        return (), tuple((pod, str(Verdict.UNKNOWN)) for pod in pods)
    verdict_of, rows = stored_pod_verdicts(workload)
    fixed = [pod for pod in pods if verdict_of.get(pod) in RESTART_FIXES]
    others = tuple((pod, verdict_of.get(pod, str(Verdict.UNKNOWN))) for pod in pods if pod not in fixed)
    return pod_previews(workload, fixed, rows), others


def pod_previews(workload: Workload, pods: list[str], rows: dict[str, list[DriftRow]]) -> tuple[PodPreview, ...]:
    """The preview of each named pod: what changes for it, by source, with who made each change."""
    cache: dict[tuple[str, str, str, str], SourcePreview] = {}
    previews = []
    for pod in pods:
        behind = {}
        for row in rows.get(pod, []):
            if row.verdict in RESTART_FIXES and row.running_version != row.current_version:
                behind[(row.source.kind, row.source.name)] = (row.running_version or "", row.current_version or "")
        sources = []
        for (kind, name), (running, current) in sorted(behind.items()):
            key = (kind, name, running, current)
            if key not in cache:
                cache[key] = _source_preview(workload, kind, name, running, current)
            sources.append(cache[key])
        verdict = verdicts.worst([row.verdict for row in rows.get(pod, [])]) if rows.get(pod) else Verdict.UNKNOWN
        previews.append(PodPreview(pod, str(verdict), tuple(sources)))
    return tuple(previews)


def _source_preview(workload: Workload, kind: str, name: str, running: str, current: str) -> SourcePreview:
    entries = history(workload.cluster, workload.namespace, kind, name)
    numbers = {entry.version.resource_version: index for index, entry in enumerate(entries)}
    start, end = numbers.get(running), numbers.get(current)
    changes: tuple[Change, ...] = ()
    if end is not None:
        after = (start + 1) if start is not None else end
        changes = tuple(
            Change(entry.number, entry.version.resource_version, entry.author, entry.changed_at)
            for entry in entries[after : end + 1]
        )
    keys: tuple[KeyChange, ...] = ()
    if start is not None and end is not None:
        keys = _keys(kind, entries[start].version.pk, entries[end].version.pk)
    return SourcePreview(kind, name, running, current, keys, changes)


def _keys(kind: str, old_pk: int, new_pk: int) -> tuple[KeyChange, ...]:
    versions = {v.pk: v for v in SourceVersion.objects.filter(pk__in=[old_pk, new_pk])}
    old, new = versions[old_pk], versions[new_pk]
    is_config_map = kind == SourceKind.CONFIG_MAP
    diffs = key_diffs(
        old.key_hashes,
        new.key_hashes,
        old.data if is_config_map else None,  # a Secret's values are never stored: names only
        new.data if is_config_map else None,
        frozenset(old.binary_keys) | frozenset(new.binary_keys),
    )
    found = []
    for diff in diffs:
        if diff.status == "unchanged":
            continue
        shown = is_config_map and not diff.binary and diff.too_large is None
        before = (old.data or {}).get(diff.key) if shown else None
        after = (new.data or {}).get(diff.key) if shown else None
        found.append(KeyChange(diff.key, diff.status, before, after))
    return tuple(found)
