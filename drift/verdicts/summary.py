"""A workload's verdicts in one summary: pods per verdict, per mode, split, stale sources; and ``worst``, the one
definition of a workload's (or a pod's) worst verdict."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from drift.rollout.kinds import ROLLABLE_KINDS
from drift.verdicts.facts import DriftRow
from drift.vocabulary import VERDICT_ORDER, Verdict


@dataclass
class WorkloadSummary:
    """One workload: pods per (worst) verdict, pods per mode and (worst) verdict through that mode, whether its
    pods run different contents of one source (split), its stale sources and the earliest moment they went
    stale."""

    workload_id: int
    cluster: str
    namespace: str
    kind: str
    name: str
    pods: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICT_ORDER, 0))
    modes: dict[str, dict[str, int]] = field(default_factory=dict)
    split: bool = False
    stale_sources: list[str] = field(default_factory=list)
    stale_since: datetime | None = None
    expires_at: datetime | None = None

    @property
    def attention(self) -> bool:
        """Something to look at: a pod not fresh, or pods split between contents."""
        return self.split or any(count for verdict, count in self.pods.items() if verdict != Verdict.FRESH)

    @property
    def stale_pods_by_mode(self) -> dict[str, int]:
        """Per consumption mode the workload reads through, its pods stale through that mode (a pod stale through
        env and a volume counts in both; 0 for a mode with nothing stale, so a gauge drops to 0)."""
        return {mode: by_verdict.get(Verdict.STALE, 0) for mode, by_verdict in self.modes.items()}

    @property
    def stale_pod_count(self) -> int:
        return self.pods.get(Verdict.STALE, 0)

    @property
    def restart_needed_pod_count(self) -> int:
        """Pods a restart would bring up to date: stale, or whose file is new on disk only."""
        return self.pods.get(Verdict.STALE, 0) + self.pods.get(Verdict.UNRELOADED, 0)

    @property
    def rollable(self) -> bool:
        return self.kind in ROLLABLE_KINDS

    @property
    def total(self) -> int:
        return sum(self.pods.values())

    @property
    def worst(self) -> str:
        return worst(verdict for verdict, count in self.pods.items() if count)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(rows: Iterable[DriftRow], expiries: dict[int, datetime | None] | None = None) -> list[WorkloadSummary]:
    """Per workload of these rows; ``expiries`` maps a consumption id to its verdict's expiry."""
    by_workload: dict[int, list[DriftRow]] = defaultdict(list)
    for row in rows:
        by_workload[row.workload_id].append(row)
    summaries = []
    for workload_id, group in by_workload.items():
        first = group[0]
        summary = WorkloadSummary(workload_id, first.cluster, first.namespace, first.workload.kind, first.workload.name)
        worst: dict[int, int] = {}
        worst_per_mode: dict[tuple[str, int], int] = {}
        for row in group:
            rank = VERDICT_ORDER.index(row.verdict)
            worst[row.pod_id] = min(rank, worst.get(row.pod_id, rank))
            key = (str(row.mode), row.pod_id)
            worst_per_mode[key] = min(rank, worst_per_mode.get(key, rank))
        for rank in worst.values():
            summary.pods[VERDICT_ORDER[rank]] += 1
        for (mode, _), rank in worst_per_mode.items():
            per_mode = summary.modes.setdefault(mode, {})
            per_mode[VERDICT_ORDER[rank]] = per_mode.get(VERDICT_ORDER[rank], 0) + 1
        summary.split = any(row.split for row in group)
        # Sources a restart would bring up to date: stale, or new on disk while the process may run the old one.
        stale = [row for row in group if row.verdict in (Verdict.STALE, Verdict.UNRELOADED)]
        summary.stale_sources = sorted({str(row.source) for row in stale})
        summary.stale_since = min((row.stale_since for row in stale if row.stale_since), default=None)
        if expiries is not None:
            summary.expires_at = min(
                (moment for row in group if (moment := expiries.get(row.consumption_id)) is not None), default=None
            )
        summaries.append(summary)
    return sorted(summaries, key=lambda s: (s.cluster, s.namespace, s.kind, s.name))


def worst(verdicts: Iterable[str]) -> Verdict:
    """The worst of these verdicts, in VERDICT_ORDER (fresh when there are none)."""
    return min((Verdict(verdict) for verdict in verdicts), key=VERDICT_ORDER.index, default=Verdict.FRESH)


def pod_verdicts(rows: Iterable[DriftRow]) -> dict[tuple[str, str, str], Verdict]:
    """(cluster, namespace, pod) -> its worst verdict."""
    by_pod: dict[tuple[str, str, str], list[Verdict]] = defaultdict(list)
    for row in rows:
        by_pod[(row.cluster, row.namespace, row.pod)].append(row.verdict)
    return {pod: worst(verdicts) for pod, verdicts in by_pod.items()}
