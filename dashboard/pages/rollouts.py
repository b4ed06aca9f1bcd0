"""The Rollouts page (running and recent, filtered), and what a rollout's confirmation says of the pods' verdicts."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from drift import verdicts
from drift.models import Rollout, Workload
from drift.vocabulary import Verdict

# States the Rollouts page filters on: running (not finished), finished, or one status.
RUNNING = "running"
FINISHED = "finished"
# Rollouts listed at most: the newest first.
LIMIT = 200


@dataclass(frozen=True)
class RolloutFilters:
    cluster: str = ""
    namespace: str = ""
    state: str = ""  # RUNNING, FINISHED or a Rollout.Status value

    @property
    def active(self) -> bool:
        return any((self.cluster, self.namespace, self.state))


def rollouts(filters: RolloutFilters, limit: int = LIMIT) -> QuerySet[Rollout]:
    """Running and recent rollouts, newest first, as the filters ask. Every user may read every rollout (as every
    page), so nothing here narrows by role."""
    found = Rollout.objects.select_related("cluster")
    if filters.cluster:
        found = found.filter(cluster__name=filters.cluster)
    if filters.namespace:
        found = found.filter(namespace=filters.namespace)
    if filters.state == RUNNING:
        found = found.filter(status__in=Rollout.ACTIVE)
    elif filters.state == FINISHED:
        found = found.exclude(status__in=Rollout.ACTIVE)
    elif filters.state:
        found = found.filter(status=filters.state)
    return found.order_by("-requested_at", "-id")[:limit]


def every_pod_fresh(workload: Workload) -> bool:
    """Whether the stored verdicts say every pod of the workload already runs the current configuration (a
    rollout would only restart them). False when no pod is known."""
    rows = verdicts.rows(workload.cluster, workload.namespace, [workload.pk])
    return bool(rows) and all(row.verdict == Verdict.FRESH for row in rows)
