"""The pod page: each env var and file a container gets from a source, against what the source holds now."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from dashboard.pages.version_links import is_service_account_ca
from drift import verdicts
from drift.authorship import describe
from drift.diffs import DiffRow, SizeSummary, side_by_side, too_large
from drift.history import version_number
from drift.models import Cluster, Consumption, Pod, SourceVersion
from drift.verdicts import DriftRow, pod_verdicts
from drift.vocabulary import Mode, SourceKind, Verdict


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

    @property
    def multiline(self) -> bool:
        return "\n" in (self.running or "") or "\n" in (self.current or "")


@dataclass
class PodDetail:
    pod: Pod
    verdict: str
    entries: list[EffectiveEntry]
    service_account_rows: list[DriftRow]
    # "app started with ConfigMap env-config version #3, written by alice@example.com via kubectl-patch at ..."
    started_with: list[str] = field(default_factory=list)

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


def pod_detail(pod: Pod, now: dt.datetime | None = None) -> PodDetail:
    rows = [row for row in verdicts.rows(pod.cluster, pod.namespace, [pod.workload_id], now) if row.pod_id == pod.pk]
    verdict = pod_verdicts(rows).get((pod.cluster.name, pod.namespace, pod.name), Verdict.UNKNOWN)
    consumptions = {
        c.pk: c
        for c in Consumption.objects.filter(pk__in=[row.consumption_id for row in rows]).select_related("container")
    }
    versions = _versions_by_rv(pod.cluster, pod.namespace, rows)
    entries: list[EffectiveEntry] = []
    service_account: list[DriftRow] = []
    started_with: dict[tuple[str, int], str] = {}
    for row in rows:
        if is_service_account_ca(row):
            service_account.append(row)
            continue
        known = versions.get((row.source.kind, row.source.name), {})
        running = known.get(row.running_version or "")
        current = known.get(row.current_version or "")
        entries.extend(_effective(consumptions[row.consumption_id], row, running, current))
        container = consumptions[row.consumption_id].container.name
        if running is not None and (container, running.pk) not in started_with:
            started_with[(container, running.pk)] = _started_with(container, running)
    return PodDetail(pod, verdict, entries, service_account, list(started_with.values()))


def _started_with(container: str, version: SourceVersion) -> str:
    written = version.modified_at or version.first_seen
    return (
        f"{container} started with {version.source.kind} {version.source.name} version #{version_number(version)}, "
        f"written by {describe(version.changed_by, version.client, version.author_confidence)} "
        f"at {timezone.localtime(written):%Y-%m-%d %H:%M:%S}"
    )


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
