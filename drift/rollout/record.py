"""Writing down what happened to a rollout: its row and its audit entry, always together, and the one lock
order every writer follows (the cluster's advisory lock first, then Rollout rows)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from drift import audit as audit_log
from drift import metrics
from drift.models import AuditEvent, Cluster, Rollout
from drift.rollout.kinds import Target
from drift.rollout.plan import Plan
from drift.rollout.signals import rollout_completed
from drift.vocabulary import RolloutAction

# pg_advisory_xact_lock(namespace, key): serialises rollout decisions per cluster, without locking the
# cluster row itself (the snapshot updates that row).
_ADVISORY_LOCK_NAMESPACE = 0x0D71
# The longest reason an operator may give for a rollout (Rollout.reason's column).
REASON_MAX = 500
# The audit entries that end a rollout; each counts once in driftwatch_rollouts_total, by the row's status.
ENDING_ACTIONS = frozenset(
    {
        AuditEvent.Action.ROLLOUT_COMPLETED,
        AuditEvent.Action.ROLLOUT_FAILED,
        AuditEvent.Action.ROLLOUT_REFUSED,
        AuditEvent.Action.ROLLOUT_NOOP,
        AuditEvent.Action.ROLLOUT_CANCELLED,
    }
)


def lock_cluster(cluster: Cluster | int) -> None:
    """One rollout decision at a time per cluster, until the transaction ends. Always taken before any
    Rollout row lock, never after one: the one lock order."""
    key = cluster if isinstance(cluster, int) else cluster.pk
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_LOCK_NAMESPACE, key])


def audit(rollout: Rollout, action: str, message: str, detail: dict[str, Any], actor: str) -> None:
    audit_log.record(
        actor,
        action,
        message,
        cluster_name=rollout.cluster.name,
        namespace=rollout.namespace,
        object_kind=rollout.kind,
        object_name=rollout.name,
        detail={"rollout": rollout.pk, "batch": str(rollout.batch) if rollout.batch else None, **detail},
    )
    if action in ENDING_ACTIONS:
        cluster, result = rollout.cluster.name, str(rollout.status)
        transaction.on_commit(lambda: metrics.ROLLOUTS.labels(cluster, result).inc())


def new_rollout(cluster: Cluster, target: Target, actor: str, status: str, **fields: Any) -> Rollout:
    return Rollout(
        cluster=cluster,
        kind=target.kind,
        namespace=target.namespace,
        name=target.name,
        requested_by=actor,
        annotation_key=cluster.rollout_annotation,
        status=status,
        **fields,
    )


def pods_text(pods: tuple[str, ...]) -> str:
    if not pods:
        return "no pod"
    shown = ", ".join(pods[:5]) + (f" and {len(pods) - 5} more" if len(pods) > 5 else "")
    return f"{len(pods)} pod(s) ({shown})"


def requeue(rollout: Rollout, message: str, claimed_at: Any = None) -> None:
    """A batch's rollout that a passing fault kept from being sent (a worker killed before its patch, an API
    server away) goes back from `patching` to `queued`: the batch starts it again, so it is neither lost nor,
    since nothing was sent, sent twice. `claimed_at`: only if the row is still the claim made then (not claimed
    again meanwhile by another follower, whose patch may be in flight)."""
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().get(pk=rollout.pk)
        current_claim = locked.patched_at or locked.requested_at
        if locked.status == Rollout.Status.PATCHING and (claimed_at is None or current_claim == claimed_at):
            locked.status, locked.patched_at, locked.message = Rollout.Status.QUEUED, None, message[:2000]
            locked.save(update_fields=["status", "patched_at", "message"])
    rollout.refresh_from_db()


def other_going(rollout: Rollout) -> Rollout | None:
    """Another of our rollouts of the same workload still going (asked under the cluster's lock, by a claim)."""
    return (
        Rollout.objects.of(rollout.cluster, rollout.kind, rollout.namespace, rollout.name)
        .going()
        .exclude(pk=rollout.pk)
        .first()
    )


def deadline_passed(rollout: Rollout) -> bool:
    """Whether the cluster's rollout deadline has passed since the rollout was sent (or asked for)."""
    started = rollout.patched_at or rollout.requested_at
    return timezone.now() - started >= timedelta(seconds=rollout.cluster.rollout_deadline_seconds)


def already_going(target: Target, going: Rollout) -> str:
    """Why another rollout of the workload must wait: one of ours is going."""
    since = timezone.localtime(going.requested_at).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"A rollout of {target} is already in progress (requested by {going.requested_by} at {since}). "
        "Wait for it to finish."
    )


def audit_end(rollout: Rollout, state: str, message: str, extra: dict[str, Any] | None = None) -> None:
    """The audit entry that ends a rollout (complete, failed, paused, stuck); after a completed one, signal
    `rollout_completed` once the transaction commits so the new pods get judged."""
    target = Target.of(rollout)
    counts = {"desired": rollout.desired, "updated": rollout.updated, "ready": rollout.ready}
    detail = counts | {"available": rollout.available, "status": state, "requested_by": rollout.requested_by}
    detail |= {"action": rollout.action} | (extra or {})
    what = "rollout" if rollout.action == RolloutAction.TEMPLATE else "restart of the stale pods"
    if state == Rollout.Status.COMPLETE:
        audit(
            rollout, AuditEvent.Action.ROLLOUT_COMPLETED, f"{what} of {target} {message}", detail, rollout.requested_by
        )
        transaction.on_commit(lambda: rollout_completed.send(sender=Rollout, rollout=rollout))
        return
    verbs: dict[str, str] = {Rollout.Status.PAUSED: "paused", Rollout.Status.STUCK: "stuck"}
    verb = verbs.get(state, "failed")
    audit(
        rollout, AuditEvent.Action.ROLLOUT_FAILED, f"{what} of {target} {verb}: {message}", detail, rollout.requested_by
    )


def finish_without_patch(rollout: Rollout, plan: Plan) -> None:
    """Record a refusal or a no-op: the row and its audit entry, in one transaction."""
    is_refused = plan.outcome == Plan.REFUSED
    rollout.status = Rollout.Status.REFUSED if is_refused else Rollout.Status.NOOP
    rollout.message, rollout.finished_at = plan.message, timezone.now()
    rollout.config_hash, rollout.desired = plan.config_hash, plan.desired
    rollout.annotation_key = plan.annotation_key or rollout.annotation_key
    action = AuditEvent.Action.ROLLOUT_REFUSED if is_refused else AuditEvent.Action.ROLLOUT_NOOP
    verb = "refused" if is_refused else "not needed"
    with transaction.atomic():
        rollout.save()
        audit(rollout, action, f"rollout of {plan.target} {verb}: {plan.message}", plan.detail(), rollout.requested_by)


def record_outcome(cluster: Cluster, plan: Plan, actor: str) -> Rollout:
    """Record a plan that ended without a patch (refused or no-op), as when the Roll out button found it so."""
    if plan.ready:
        raise ValueError("record_outcome is for refused and no-op plans; use request_rollout to patch")
    rollout = new_rollout(cluster, plan.target, actor, Rollout.Status.REFUSED, action=plan.action)
    finish_without_patch(rollout, plan)
    return rollout


def record_dry_run(cluster: Cluster, plan: Plan, actor: str) -> Rollout:
    rollout = new_rollout(
        cluster,
        plan.target,
        actor,
        Rollout.Status.DRY_RUN,
        action=plan.action,
        finished_at=timezone.now(),
        message=f"dry run: {plan.message} The {plan.dry_run}.",
        config_hash=plan.config_hash,
        desired=plan.desired,
        generation=plan.generation,
    )
    with transaction.atomic():
        rollout.save()
        audit(
            rollout,
            AuditEvent.Action.ROLLOUT_DRY_RUN,
            f"dry run of a rollout of {plan.target}: {pods_text(plan.pods)} would be replaced; nothing was patched",
            plan.detail(),
            actor,
        )
    return rollout


def carries(target: Target, workload: dict[str, Any], key: str, value: str) -> bool:
    return bool(value) and target.rules.restarted_with(workload, key) == value


def record_applied(rollout: Rollout, generation: int | None, message: str) -> None:
    """The patch is in the cluster: the row goes from `patching` to `in_progress` (unless cancelled meanwhile)."""
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if locked.status == Rollout.Status.PATCHING:
            locked.status, locked.generation, locked.message = Rollout.Status.IN_PROGRESS, generation, message
            locked.save(update_fields=["status", "generation", "message"])
    rollout.refresh_from_db()
