"""Per-workload summaries: what `/metrics` and notifications need to know about each workload, as plain values.

This is the one place they ask; it judges today's stored facts through drift.verdicts (one pass per cluster, a
handful of queries each, however many pods), and can be switched to stored verdicts without its readers
noticing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from drift.models import Cluster
from drift.verdicts import drift_rows
from drift.vocabulary import VERDICT_ORDER, Verdict


@dataclass
class WorkloadSummary:
    """One workload's pods at one moment. `stale_pods` counts, per consumption mode, the pods with at least one
    stale consumption of that mode; `pods` counts each pod once, under its worst verdict."""

    cluster: str
    namespace: str
    workload_kind: str
    workload: str
    workload_id: int
    stale_pods: dict[str, int] = field(default_factory=dict)
    oldest_stale_since: datetime | None = None
    pods: dict[str, int] = field(default_factory=dict)
    # Why the oldest stale consumption is stale: "ConfigMap env-config (envFrom): ..." (names only, no value).
    stale_reason: str = ""

    @property
    def stale_pod_count(self) -> int:
        return self.pods.get(Verdict.STALE, 0)


def workload_summaries(clusters: Iterable[Cluster] | None = None, now: datetime | None = None) -> list[WorkloadSummary]:
    """Every workload with a live pod that reads a ConfigMap or Secret, per cluster, judged at `now`."""
    now = now or timezone.now()
    summaries: list[WorkloadSummary] = []
    for cluster in clusters if clusters is not None else Cluster.objects.all():
        summaries.extend(_cluster_summaries(cluster, now))
    return summaries


def _cluster_summaries(cluster: Cluster, now: datetime) -> list[WorkloadSummary]:
    by_workload: dict[int, WorkloadSummary] = {}
    worst: dict[tuple[int, str], Verdict] = {}
    stale_modes: dict[tuple[int, str], set[str]] = defaultdict(set)
    for row in drift_rows(cluster, now=now):
        summary = by_workload.get(row.workload_id)
        if summary is None:
            summary = WorkloadSummary(
                cluster.name, row.namespace, row.workload.kind, row.workload.name, row.workload_id
            )
            by_workload[row.workload_id] = summary
        # Every mode the workload reads through is exported, at 0 when nothing is stale: a gauge drops to 0.
        summary.stale_pods.setdefault(row.mode, 0)
        pod = (row.workload_id, row.pod)
        if pod not in worst or VERDICT_ORDER.index(row.verdict) < VERDICT_ORDER.index(worst[pod]):
            worst[pod] = row.verdict
        if row.verdict != Verdict.STALE:
            continue
        stale_modes[pod].add(row.mode)
        since = row.stale_since
        if since is not None and (summary.oldest_stale_since is None or since < summary.oldest_stale_since):
            summary.oldest_stale_since = since
            summary.stale_reason = f"{row.source} ({row.mode}): {row.reason}"
        elif not summary.stale_reason:
            summary.stale_reason = f"{row.source} ({row.mode}): {row.reason}"
    for (workload_id, _), verdict in worst.items():
        pods = by_workload[workload_id].pods
        pods[verdict] = pods.get(verdict, 0) + 1
    for (workload_id, _), modes in stale_modes.items():
        counts = by_workload[workload_id].stale_pods
        for mode in modes:
            counts[mode] = counts.get(mode, 0) + 1
    return list(by_workload.values())
