"""Carrying a rollout out, in the order that never loses a real change:

1. plan (read only), outside any transaction;
2. claim: under the cluster's advisory lock, refuse if one of our rollouts of the workload is still going,
   else write the Rollout row as `patching` and its audit entry, and commit;
3. patch, outside any transaction and any lock;
4. record the answer. When there is none (a timeout, a dropped connection, a 5xx), read the workload again
   and record what it shows; when even that fails the row stays `patching` and the follower settles it.
A crash or a database error after step 3 therefore leaves the `patching` row and its audit entry behind."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.db import transaction
from django.utils import timezone

from drift import kube
from drift.models import AuditEvent, Cluster, Rollout
from drift.rollout.follow import refresh_rollout
from drift.rollout.kinds import Target
from drift.rollout.plan import Plan, client_for, noop_message, plan_rollout, refused
from drift.rollout.record import (
    REASON_MAX,
    already_going,
    audit,
    carries,
    finish_without_patch,
    lock_cluster,
    new_rollout,
    other_going,
    pods_text,
    record_applied,
    record_dry_run,
    record_outcome,
    requeue,
)


def request_rollout(
    cluster: Cluster,
    target: Target,
    actor: str,
    *,
    dry_run: bool = False,
    client: kube.KubeClient | None = None,
    reason: str = "",
) -> tuple[Rollout, Plan]:
    """Plan again (what the confirmation panel showed may be old) and patch. Never raises for the cluster's
    answers: a refusal, a no-op or a dry run is recorded like a rollout. ``reason``: why the operator asked
    (optional), kept on the row and in its `rollout.requested` entry."""
    if not target.rollable:
        plan = plan_rollout(cluster, target)
        return record_outcome(cluster, plan, actor), plan
    try:
        with client_for(cluster, client) as api:
            return _request(cluster, target, actor, dry_run, api, reason)
    except kube.KubeConfigError as error:
        plan = refused(target, f"Cannot connect to cluster {cluster.name}: {error}")
        return record_outcome(cluster, plan, actor), plan


def _request(
    cluster: Cluster, target: Target, actor: str, dry_run: bool, api: kube.KubeClient, reason: str
) -> tuple[Rollout, Plan]:
    # Our own earlier rollout of this workload may have ended since anyone looked: record its end first.
    for earlier in _ours_going(cluster, target):
        refresh_rollout(earlier, api)
    plan = plan_rollout(cluster, target, api)
    if not plan.ready:
        return record_outcome(cluster, plan, actor), plan
    if dry_run:
        return record_dry_run(cluster, plan, actor), plan
    rollout = new_rollout(cluster, target, actor, Rollout.Status.PATCHING, reason=reason[:REASON_MAX])
    if not _claim(rollout, plan):
        return rollout, replace(plan, outcome=Plan.REFUSED, message=rollout.message)
    return rollout, patch_and_record(rollout, plan, api)


def _ours_going(cluster: Cluster, target: Target) -> list[Rollout]:
    return list(
        Rollout.objects.of(cluster, target.kind, target.namespace, target.name).going().select_related("cluster")
    )


def _claim(rollout: Rollout, plan: Plan) -> bool:
    """Step 2: the `patching` row and its audit entry, committed before anything is sent."""
    with transaction.atomic():
        lock_cluster(rollout.cluster)
        going = other_going(rollout)
        if going is not None:
            finish_without_patch(rollout, refused(plan.target, already_going(plan.target, going), **_known(plan)))
            return False
        _mark_patching(rollout, plan)
        if rollout.batch is None:  # a batch's requests were audited when it was queued
            audit(
                rollout,
                AuditEvent.Action.ROLLOUT_REQUESTED,
                f"rollout of {plan.target} requested: {pods_text(plan.pods)} to be replaced ({plan.strategy}); "
                "patching" + (f"; reason: {rollout.reason}" if rollout.reason else ""),
                plan.detail() | {"generation_before": plan.generation, "reason": rollout.reason},
                actor=rollout.requested_by,
            )
    return True


def _known(plan: Plan) -> dict[str, Any]:
    return {"annotation_key": plan.annotation_key, "config_hash": plan.config_hash, "desired": plan.desired}


def _mark_patching(rollout: Rollout, plan: Plan) -> None:
    rollout.status, rollout.patched_at = Rollout.Status.PATCHING, timezone.now()
    rollout.annotation_key = plan.annotation_key or rollout.annotation_key
    rollout.config_hash, rollout.desired, rollout.generation = plan.config_hash, plan.desired, plan.generation
    rollout.message = f"patching {rollout.annotation_key}={plan.config_hash[:12]}…"
    rollout.save()


def start_claimed(rollout: Rollout) -> None:
    """A batch's rollout, claimed as `patching` by the batch: plan it, and patch when the plan is ready."""
    target = Target.of(rollout)
    try:
        with client_for(rollout.cluster, None) as api:
            plan = plan_rollout(rollout.cluster, target, api, claimed=rollout.pk)
            if plan.retry:
                requeue(rollout, f"queued: {plan.message} (tried again shortly)")
                return
            if not plan.ready:
                _finish_patching(rollout, lambda: finish_without_patch(rollout, plan))
                return
            _mark_patching(rollout, plan)  # the hash about to be sent, recorded before it is sent
            patch_and_record(rollout, plan, api)
    except kube.KubeConfigError as error:
        finish_without_patch(rollout, refused(target, f"Cannot connect to cluster {rollout.cluster.name}: {error}"))


# Answers that say for certain the patch was not applied; anything else leaves a doubt.
_CERTAIN_REFUSALS = (kube.Forbidden, kube.NotFound, kube.KubeConfigError, kube.InvalidName)


def patch_and_record(rollout: Rollout, plan: Plan, api: kube.KubeClient) -> Plan:
    """Steps 3 and 4, for a row already recorded as `patching`."""
    target = plan.target
    try:
        body = plan.patch
        patched = api.patch(
            target.path(), body, what=target.permission("patch"), content_type=target.rules.patch_content_type
        )
    except _CERTAIN_REFUSALS as error:
        return _not_applied(rollout, plan, error)
    except kube.ApiRefused as error:
        if error.status < 500:
            return _not_applied(rollout, plan, error)
        return settle_after_doubt(rollout, plan, api, error)
    except kube.KubeError as error:
        return settle_after_doubt(rollout, plan, api, error)
    generation = (patched.get("metadata") or {}).get("generation")
    if generation == plan.generation:  # someone set the same value between the dry run and now
        message = noop_message(plan.annotation_key, plan.config_hash, plan.sources)
        noop = replace(plan, outcome=Plan.NOOP, message=message)
        _finish_patching(rollout, lambda: finish_without_patch(rollout, noop))
        return noop
    message = f"patched {plan.annotation_key}={plan.config_hash[:12]}…; generation {plan.generation} → {generation}"
    record_applied(rollout, generation, message)
    return plan


def _not_applied(rollout: Rollout, plan: Plan, error: kube.KubeError) -> Plan:
    permission = getattr(error, "permission", "")
    outcome = replace(plan, outcome=Plan.REFUSED, message=f"The patch was not applied: {error}", permission=permission)
    _finish_patching(rollout, lambda: finish_without_patch(rollout, outcome))
    return outcome


def settle_after_doubt(rollout: Rollout, plan: Plan, api: kube.KubeClient, error: kube.KubeError) -> Plan:
    """No answer to the patch: read the workload again to learn whether it was applied."""
    try:
        workload = api.get(plan.target.path(), what=plan.target.permission("get"))
    except kube.KubeError as again:
        Rollout.objects.filter(pk=rollout.pk, status=Rollout.Status.PATCHING).update(
            message=f"unknown whether the patch was applied ({error}); reading the workload again failed too "
            f"({again}); Driftwatch checks again shortly"
        )
        rollout.refresh_from_db()
        return replace(plan, message=rollout.message)
    if carries(plan.target, workload, plan.annotation_key, plan.config_hash):
        generation = (workload.get("metadata") or {}).get("generation")
        record_applied(
            rollout,
            generation,
            f"patched {plan.annotation_key}={plan.config_hash[:12]}… (the answer was lost: {error}; reading the "
            f"workload again showed the patch applied, generation {generation})",
        )
        return plan
    outcome = replace(
        plan,
        outcome=Plan.REFUSED,
        message=f"The patch was not applied: {error} (the workload, read again, does not carry it).",
    )
    _finish_patching(rollout, lambda: finish_without_patch(rollout, outcome))
    return outcome


def _finish_patching(rollout: Rollout, finish: Any) -> None:
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if locked.status == Rollout.Status.PATCHING:
            finish()
