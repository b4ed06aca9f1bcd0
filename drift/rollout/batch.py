"""Bulk rollouts: a batch's rollouts start a cluster's `rollout_batch_size` at a time, each group once the
previous one has ended. Advanced by the `track_rollouts` beat task (or an operator's POST), never by a page
view. A failed, paused or stuck rollout stops what is still queued for its cluster: a bad configuration
should not reach every workload."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from drift.models import AuditEvent, Cluster, Rollout
from drift.rollout.evict import start_claimed_eviction
from drift.rollout.execute import start_claimed
from drift.rollout.follow import cancel_rollout, refresh_rollout
from drift.rollout.kinds import Target
from drift.rollout.plan import refused
from drift.rollout.record import REASON_MAX, audit, finish_without_patch, lock_cluster, new_rollout
from drift.rollout.windows import closed_reason
from drift.vocabulary import RolloutAction

# Ends that stop the rest of their batch.
_BROKEN = (Rollout.Status.FAILED, Rollout.Status.PAUSED, Rollout.Status.STUCK)


def advance_batch(batch: uuid.UUID) -> list[Rollout]:
    """Refresh the batch's running rollouts and, per cluster, start the next group once none runs.
    Returns the batch's rollouts in order."""
    for rollout in Rollout.objects.filter(batch=batch).going().select_related("cluster"):
        refresh_rollout(rollout)
    clusters = sorted(set(Rollout.objects.filter(batch=batch).values_list("cluster_id", flat=True)))
    for cluster_id in clusters:
        for rollout in _claim_next_group(batch, cluster_id):
            # Kubernetes calls: outside the transaction that claimed them
            if rollout.action == RolloutAction.EVICT:
                start_claimed_eviction(rollout)
            else:
                start_claimed(rollout)
    return list(Rollout.objects.filter(batch=batch).select_related("cluster").order_by("id"))


def _claim_next_group(batch: uuid.UUID, cluster_id: int) -> list[Rollout]:
    """Under the cluster's advisory lock, then the rows' locks (the one lock order): mark the next group
    `patching`, so that two followers never start the same rollout."""
    with transaction.atomic():
        lock_cluster(cluster_id)
        group = list(
            Rollout.objects.select_for_update()
            .filter(batch=batch, cluster_id=cluster_id)
            .select_related("cluster")
            .order_by("id")
        )
        if any(rollout.going for rollout in group):
            return []
        queued = [rollout for rollout in group if rollout.status == Rollout.Status.QUEUED]
        if not queued:
            return []
        broken = next((r for r in group if r.status in _BROKEN), None)
        if broken is not None:
            ended = broken.get_status_display().lower()
            for rollout in queued:
                finish_without_patch(
                    rollout,
                    refused(
                        Target.of(rollout),
                        f"Not started: the rollout of {Target.of(broken)} in the same batch {ended}; the rest of the "
                        "batch was stopped.",
                    ),
                )
            return []
        # Outside its namespace's rollout window a rollout stays queued, saying when the window opens.
        waiting = {r.pk: closed_reason(r.cluster, r.namespace) for r in queued}
        for rollout in queued:
            if waiting[rollout.pk] and rollout.message != f"queued: {waiting[rollout.pk]}":
                rollout.message = f"queued: {waiting[rollout.pk]}"
                rollout.save(update_fields=["message"])
        queued = [rollout for rollout in queued if not waiting[rollout.pk]]
        starting = queued[: max(1, group[0].cluster.rollout_batch_size)]
        now = timezone.now()
        for rollout in starting:
            rollout.status, rollout.patched_at = Rollout.Status.PATCHING, now
            rollout.message = "starting: planning again before the patch"
            rollout.save(update_fields=["status", "patched_at", "message"])
    return starting


def cancel_batch(batch: uuid.UUID, actor: str) -> int:
    """Cancel every queued or in-progress rollout of the batch (each audited); returns how many."""
    rows = Rollout.objects.filter(batch=batch, status__in=[Rollout.Status.QUEUED, Rollout.Status.IN_PROGRESS])
    return sum(cancel_rollout(rollout, actor) for rollout in rows.select_related("cluster").order_by("id"))


def follow_rollouts() -> dict[str, int]:
    """Everything that is moving: refresh rollouts in progress (or left `patching`) and advance batches."""
    refreshed = 0
    for rollout in Rollout.objects.going().filter(batch=None).select_related("cluster"):
        refresh_rollout(rollout)
        refreshed += 1
    active = Rollout.objects.filter(status__in=Rollout.ACTIVE).values_list("batch", flat=True)
    batches = {batch for batch in active if batch is not None}
    for batch in batches:
        advance_batch(batch)
    return {"refreshed": refreshed, "batches": len(batches)}


def queue_batch(
    requests: list[tuple[Cluster, Target]],
    actor: str,
    reason: str = "",
    action: RolloutAction = RolloutAction.TEMPLATE,
) -> uuid.UUID:
    """Queue several rollouts under one batch id; drift.rollout.batch starts them, a cluster's
    `rollout_batch_size` at a time, each group once the previous one has finished. ``reason``: why the operator
    asked (optional), kept on each row and in its `rollout.requested` entry. ``action``: the template patch, or
    the eviction of each workload's stale pods (one at a time; which pods go is planned again when it starts)."""
    batch = uuid.uuid4()
    reason = reason[:REASON_MAX]
    what = "restart of the stale pods" if action == RolloutAction.EVICT else "rollout"
    with transaction.atomic():
        for position, (cluster, target) in enumerate(requests, start=1):
            rollout = new_rollout(
                cluster, target, actor, Rollout.Status.QUEUED, batch=batch, reason=reason, action=action
            )
            rollout.save()
            audit(
                rollout,
                AuditEvent.Action.ROLLOUT_REQUESTED,
                f"{what} of {target} requested in a batch of {len(requests)} (position {position}; "
                f"{cluster.rollout_batch_size} at a time)" + (f"; reason: {reason}" if reason else ""),
                {"position": position, "batch_size": cluster.rollout_batch_size, "reason": reason, "action": action},
                actor,
            )
    return batch
