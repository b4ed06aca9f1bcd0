"""Following rollouts to their end: read the workload (outside any transaction), then record its progress
under the row's lock. Rows left `patching` by a crash or a lost answer are settled by reading the workload
again; a rollout still going past the cluster's deadline is marked stuck; an operator may cancel one."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from drift import kube
from drift.models import AuditEvent, Rollout
from drift.rollout.evict import advance_eviction
from drift.rollout.kinds import Progress, Target
from drift.rollout.plan import client_for, refused
from drift.rollout.record import (
    audit,
    audit_end,
    carries,
    deadline_passed,
    finish_without_patch,
    record_applied,
    requeue,
)
from drift.vocabulary import RolloutAction

log = logging.getLogger(__name__)

# A `patching` row younger than this may still have its patch in flight in another process: leave it alone.
PATCH_IN_FLIGHT_SECONDS = 60


def refresh_rollout(rollout: Rollout, client: kube.KubeClient | None = None) -> Rollout:
    """Read the workload's status and record the rollout's progress; at its end, audit it, and after a
    completed one signal `rollout_completed` so the new pods get judged."""
    if rollout.action == RolloutAction.EVICT:
        return advance_eviction(rollout, client)  # its own steps; it is never left `patching` by a crash
    if rollout.status == Rollout.Status.PATCHING:
        return settle_patching(rollout, client)
    if rollout.status != Rollout.Status.IN_PROGRESS:
        return rollout
    target = Target.of(rollout)
    try:
        with client_for(rollout.cluster, client) as api:
            workload = api.get(target.path(), what=target.permission("get"))
        progress = target.rules.progress(workload, rollout.generation or 0)
    except kube.NotFound:
        progress = Progress(
            Rollout.Status.FAILED, rollout.desired, rollout.updated, rollout.ready, rollout.available,
            f"{target} was deleted during the rollout",
        )  # fmt: skip
    except kube.KubeError as error:
        # Keep following: an unreachable cluster says nothing about the rollout itself.
        log.warning("cannot read the progress of rollout %s: %s", rollout.pk, error)
        Rollout.objects.filter(pk=rollout.pk, status=Rollout.Status.IN_PROGRESS).update(
            message=f"cannot read its progress right now: {error}"
        )
        rollout.refresh_from_db()
        return rollout
    progress = past_deadline(rollout, progress) or progress
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("cluster").get(pk=rollout.pk)
        if locked.status != Rollout.Status.IN_PROGRESS:
            return locked  # another follower recorded its end first, or an operator cancelled it
        locked.desired, locked.updated = progress.desired, progress.updated
        locked.ready, locked.available = progress.ready, progress.available
        locked.message = progress.message
        if progress.state != Rollout.Status.IN_PROGRESS:
            locked.status, locked.finished_at = progress.state, timezone.now()
            audit_end(locked, progress.state, progress.message)
        locked.save()
    return locked


def past_deadline(rollout: Rollout, progress: Progress) -> Progress | None:
    """A StatefulSet or DaemonSet rollout still going after the cluster's deadline is stuck: its controller
    has no deadline of its own, so without this it would block its batch and every later request forever."""
    if progress.state != Rollout.Status.IN_PROGRESS or Target.of(rollout).rules.has_own_deadline:
        return None
    if not deadline_passed(rollout):
        return None
    deadline = rollout.cluster.rollout_deadline_seconds
    return Progress(
        Rollout.Status.STUCK, progress.desired, progress.updated, progress.ready, progress.available,
        f"stuck: not complete {deadline}s after the patch (cluster {rollout.cluster.name}'s rollout deadline; "
        f"{progress.message}). Look at its pods (pending, crashing, unschedulable); Driftwatch no longer waits for it",
    )  # fmt: skip


def settle_patching(rollout: Rollout, client: kube.KubeClient | None = None) -> Rollout:
    """A row left `patching` (a crash, or no answer to the patch): the workload says whether it was applied."""
    started = rollout.patched_at or rollout.requested_at
    if timezone.now() - started < timedelta(seconds=PATCH_IN_FLIGHT_SECONDS):
        return rollout
    target = Target.of(rollout)
    try:
        with client_for(rollout.cluster, client) as api:
            workload = api.get(target.path(), what=target.permission("get"))
    except kube.NotFound:
        workload = {}
    except kube.KubeError as error:
        log.warning("cannot settle rollout %s: %s", rollout.pk, error)
        return rollout
    if carries(target, workload, rollout.annotation_key, rollout.config_hash):
        generation = (workload.get("metadata") or {}).get("generation")
        record_applied(
            rollout,
            generation,
            f"patched {rollout.annotation_key}={rollout.config_hash[:12]}… (its answer was never recorded; the "
            f"workload, read again, carries it: generation {generation})",
        )
        return rollout
    if rollout.batch is not None:
        requeue(
            rollout,
            "queued again: its patch was not applied (interrupted before it was sent), so the batch starts it again",
            claimed_at=started,
        )
        return rollout
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("cluster").get(pk=rollout.pk)
        if locked.status == Rollout.Status.PATCHING and (locked.patched_at or locked.requested_at) == started:
            finish_without_patch(
                locked,
                refused(
                    target,
                    "The patch was not applied: its sending was interrupted, and the workload, read again, does not "
                    "carry it.",
                    annotation_key=locked.annotation_key,
                    config_hash=locked.config_hash,
                    desired=locked.desired,
                ),
            )
    rollout.refresh_from_db()
    return rollout


def cancel_rollout(rollout: Rollout, actor: str) -> bool:
    """Stop following a queued or in-progress rollout (audited). A patch already sent is not undone: the
    controller goes on replacing pods, but nothing waits for it any more. False when it had already ended."""
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("cluster").get(pk=rollout.pk)
        if locked.status not in (Rollout.Status.QUEUED, Rollout.Status.IN_PROGRESS):
            return False
        was = locked.get_status_display()
        locked.status, locked.finished_at = Rollout.Status.CANCELLED, timezone.now()
        if locked.action == RolloutAction.EVICT:
            sent = " Pods already evicted stay evicted (their owner replaces them); no other pod is evicted."
        else:
            sent = " The patch already sent stays: the controller goes on replacing pods." if locked.generation else ""
        locked.message = f"cancelled by {actor} (it was {was}).{sent}"
        locked.save()
        audit(
            locked,
            AuditEvent.Action.ROLLOUT_CANCELLED,
            f"rollout of {Target.of(locked)} cancelled by {actor} (it was {was})",
            {"was": was, "requested_by": locked.requested_by},
            actor,
        )
    rollout.refresh_from_db()
    return True
