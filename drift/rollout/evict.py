"""Restart the stale pods only: evict them through the Eviction API (policy/v1, POST pods/NAME/eviction), a group
of `at_once` at a time, and let their owner (a ReplicaSet, a StatefulSet, a DaemonSet, an operator) create each
replacement, which reads the current configuration without any template change. Fresh pods are left alone.
A workload of a kind Driftwatch does not know (drift.rollout.kinds.OperatorOwned: an operator's custom resource) is
never read itself: its pods are the namespace's pods whose controller ownerReference has its recorded UID, so
`list pods` and `create pods/eviction` are all it needs.

The order that never loses a real change, as for Roll out (drift.rollout.execute):
1. plan (read only): the stored verdicts say which live pods are stale; a server-side dry run of the first
   eviction checks the permission;
2. claim: under the cluster's advisory lock, refuse if one of our rollouts of the workload is going, else write the
   row (`in_progress`, the pods chosen, by UID) and its audit entry naming every pod that will go, and commit;
3. each step (the request itself, then the follower, `track_rollouts` or `--wait`): read the pods; once every pod
   evicted so far has a Ready replacement created after the rollout started (so it read the configuration as it
   was then, or newer), write the next group into the row, commit, then send its evictions. A
   PodDisruptionBudget that allows no disruption answers 429: the pod is not evicted, the wait is counted and
   the next step tries again, until the cluster's rollout deadline.
Evictions carry the pod's UID as a precondition: a pod that was replaced meanwhile (a StatefulSet's pod keeps its
name) is never evicted by mistake."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from drift import kube
from drift.models import AuditEvent, Cluster, Rollout, Workload
from drift.rollout.kinds import EVICTABLE_TEXT, WHAT_WORKS_INSTEAD, Target, controller_owner
from drift.rollout.plan import Plan, client_for, forbidden_text, refused
from drift.rollout.preview import preview_restart, stored_workload
from drift.rollout.record import (
    already_going,
    audit,
    audit_end,
    deadline_passed,
    finish_without_patch,
    lock_cluster,
    new_rollout,
    other_going,
    pods_text,
    record_dry_run,
    record_outcome,
)
from drift.rollout.template import selector_string
from drift.rollout.windows import closed_reason
from drift.vocabulary import RolloutAction

log = logging.getLogger(__name__)

MAX_AT_ONCE = 50


def eviction_path(namespace: str, pod: str) -> str:
    return kube.core_path("pods", namespace, pod) + "/eviction"


def eviction_permission(namespace: str) -> str:
    return f"create pods/eviction in {namespace}"


def eviction_body(namespace: str, pod: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": namespace},
        "deleteOptions": {"preconditions": {"uid": uid}},
    }


# -- planning ---------------------------------------------------------------------------------------------------


def plan_eviction(
    cluster: Cluster,
    target: Target,
    client: kube.KubeClient | None = None,
    *,
    at_once: int = 1,
    claimed: int | None = None,
) -> Plan:
    """Which pods would go and which stay, what changes for each, and a dry run of the first eviction.
    ``claimed``: the batch's own row, already `patching`, which is not "another rollout going"."""
    known: dict[str, Any] = {"action": RolloutAction.EVICT, "at_once": at_once}
    if not target.rules.offers(RolloutAction.EVICT):
        instead = WHAT_WORKS_INSTEAD.get(target.kind, "").format(namespace=target.namespace, name=target.name)
        return refused(
            target,
            f"Driftwatch restarts the stale pods of {EVICTABLE_TEXT}; {target.kind} {target.name} is none of them. "
            f"{instead}".rstrip(),
            **known,
        )
    if not 1 <= at_once <= MAX_AT_ONCE:
        return refused(target, f"Pods at once must be between 1 and {MAX_AT_ONCE} (got {at_once}).", **known)
    closed = closed_reason(cluster, target.namespace)
    if closed:
        return refused(target, closed, **known)
    workload_row = stored_workload(cluster, target.kind, target.namespace, target.name)
    if workload_row is None:
        return refused(target, f"Driftwatch has not seen {target} yet: take a snapshot first.", **known)
    try:
        with client_for(cluster, client) as api:
            return _plan(cluster, target, workload_row, api, known, claimed)
    except kube.Forbidden as error:
        return refused(target, forbidden_text(cluster, error), permission=error.permission, **known)
    except kube.NotFound:
        return refused(target, f"{target} does not exist (any more) in cluster {cluster.name}.", **known)
    except kube.KubeError as error:
        return refused(target, f"Cluster {cluster.name} did not answer as expected: {error}", **known)


def _plan(
    cluster: Cluster, target: Target, workload_row: Workload, api: kube.KubeClient, known: dict, claimed: int | None
) -> Plan:
    ours = Rollout.objects.of(cluster, target.kind, target.namespace, target.name).going().exclude(pk=claimed).first()
    if ours is not None:
        return refused(target, already_going(target, ours), **known)
    if not target.rules.reads_its_object and not workload_row.uid:
        return refused(
            target,
            f"Driftwatch has not recorded the UID of {target.kind}/{target.name}, by which it finds its pods: take a "
            "snapshot first.",
            **known,
        )
    workload, live = read_workload(api, target, workload_row)
    previews, others = preview_restart(workload_row, [pod["name"] for pod in live])
    going_names = {preview.name for preview in previews}
    going = [pod for pod in live if pod["name"] in going_names]
    staying = tuple(sorted(name for name, _ in others))
    known |= {"staying": staying, "desired": len(going)}
    if not going:
        message = (
            f"No stale pod to restart: the last judgement of {target}'s {len(live)} running pod(s) finds none stale "
            "or new on disk only."
        )
        return Plan(target=target, outcome=Plan.NOOP, message=message, **known)
    first = going[0]
    dry_text = _dry_run(api, target, first)
    warnings = []
    owner = controller_owner(workload)
    if owner:
        warnings.append(
            f"Owned by {owner}: evicting pods does not touch the workload, so the owner has nothing to revert."
        )
    if "429" in dry_text:
        warnings.append("A PodDisruptionBudget allows no disruption right now: Driftwatch will wait and retry.")
    caveat = target.rules.replacement_caveat(target, cluster.rollout_deadline_seconds)
    if caveat:
        warnings.append(caveat)
    return Plan(
        target=target,
        outcome=Plan.READY,
        message=(
            f"{target}: {len(going)} stale pod(s) will be evicted, {known['at_once']} at a time, each group once the "
            f"previous one's replacements are Ready; {len(staying)} fresh pod(s) stay."
        ),
        pods=tuple(pod["name"] for pod in going),
        pod_uids=tuple(pod["uid"] for pod in going),
        previews=previews,
        strategy=f"evict {known['at_once']} at a time; "
        + (f"{target.kind}/{target.name} is expected to replace" if caveat else "the owner replaces")
        + " each evicted pod",
        dry_run=dry_text,
        warnings=tuple(warnings),
        **known,
    )


def _dry_run(api: kube.KubeClient, target: Target, pod: dict[str, Any]) -> str:
    path, what = eviction_path(target.namespace, pod["name"]), eviction_permission(target.namespace)
    try:
        api.create(path, eviction_body(target.namespace, pod["name"], pod["uid"]), what=what, dry_run=True)
    except kube.ApiRefused as error:
        if error.status == 429:
            return f"server-side dry run of evicting {pod['name']}: 429, a PodDisruptionBudget allows no disruption now"
        raise
    return f"server-side dry run accepted the eviction of {pod['name']}"


def read_workload(
    api: kube.KubeClient, target: Target, workload_row: Workload
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The workload as the API server returns it and its live pods. An operator-owned workload is not read ({}):
    its pods are those whose controller ownerReference has the UID the snapshot recorded."""
    if not target.rules.reads_its_object:
        return {}, live_pods(api, target, owner_uid=workload_row.uid)
    workload = api.get(target.path(), what=target.permission("get"))
    selector = selector_string((workload.get("spec") or {}).get("selector") or {})
    return workload, live_pods(api, target, selector=selector) if selector else []


def _controller_uid(metadata: dict[str, Any]) -> str:
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller"):
            return reference.get("uid", "")
    return ""


def live_pods(api: kube.KubeClient, target: Target, *, selector: str = "", owner_uid: str = "") -> list[dict[str, Any]]:
    """The pods that are not terminating, chosen by a label selector or by their controller's UID (every pod of the
    namespace is listed then: no selector says "owned by"): name, uid, creation time, Ready."""
    found = []
    for pod in api.list_paginated(
        kube.core_path("pods", target.namespace), what=f"list pods in {target.namespace}", label_selector=selector
    ):
        metadata = pod.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            continue
        if owner_uid and _controller_uid(metadata) != owner_uid:
            continue
        conditions = (pod.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        created = parse_datetime(metadata.get("creationTimestamp") or "")
        found.append(
            {"name": metadata.get("name", ""), "uid": metadata.get("uid", ""), "created": created, "ready": ready}
        )
    return sorted(found, key=lambda pod: pod["name"])


# -- the next step, pure -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What to do now: evict these pods (maybe none), or nothing more (done)."""

    evict: tuple[dict[str, str], ...]
    done: bool
    replaced: int  # Ready replacements so far
    message: str


def next_step(
    planned: list[dict[str, str]], evicted: list[dict[str, str]], live: list[dict[str, Any]], started: datetime,
    at_once: int,
) -> Step:  # fmt: skip
    """Pure: from the pods chosen, the evictions sent and the pods now running, what comes next. A replacement is
    a Ready pod that is not one of the pods chosen and was created after the rollout started."""
    # creationTimestamp has whole seconds: a replacement created within the second the rollout started would
    # otherwise look older than it.
    started = started.replace(microsecond=0)
    live_uids = {pod["uid"] for pod in live}
    planned_uids = {pod["uid"] for pod in planned}
    evicted_uids = {pod["uid"] for pod in evicted}
    replacements = [
        pod for pod in live if pod["uid"] not in planned_uids and pod["created"] and pod["created"] >= started
    ]
    ready = sum(1 for pod in replacements if pod["ready"])
    # Chosen pods that are gone, whether we evicted them or someone else removed them, each need a replacement.
    pending = [pod for pod in planned if pod["uid"] in live_uids and pod["uid"] not in evicted_uids]
    expected = len(planned) - len(pending)
    if ready < expected:
        waiting = [pod["name"] for pod in evicted if pod["uid"] in evicted_uids][-at_once:]
        return Step(
            (), False, ready, f"{ready} of {expected} replacement(s) Ready; waiting for those of {', '.join(waiting)}"
        )
    if not pending:
        return Step((), True, ready, f"complete: {len(planned)} stale pod(s) evicted and replaced, {ready} Ready")
    return Step(tuple(pending[:at_once]), False, ready, f"{ready} of {len(planned)} replaced; evicting the next")


# -- requesting and advancing ------------------------------------------------------------------------------------


def request_eviction(
    cluster: Cluster,
    target: Target,
    actor: str,
    *,
    at_once: int = 1,
    dry_run: bool = False,
    client: kube.KubeClient | None = None,
) -> tuple[Rollout, Plan]:
    """Plan again (the confirmation may be old), record the rollout and its audit entry, and send the first group.
    Never raises for the cluster's answers: a refusal, a no-op or a dry run is recorded like a rollout."""
    try:
        with client_for(cluster, client) as api:
            plan = plan_eviction(cluster, target, api, at_once=at_once)
            if not plan.ready:
                return record_outcome(cluster, plan, actor), plan
            if dry_run:
                return record_dry_run(cluster, plan, actor), plan
            rollout = new_rollout(
                cluster, target, actor, Rollout.Status.PATCHING, action=RolloutAction.EVICT, at_once=at_once
            )
            if not _claim(rollout, plan):
                return rollout, replace(plan, outcome=Plan.REFUSED, message=rollout.message)
            return advance_eviction(rollout, api), plan
    except kube.KubeConfigError as error:
        plan = refused(target, f"Cannot connect to cluster {cluster.name}: {error}", action=RolloutAction.EVICT)
        return record_outcome(cluster, plan, actor), plan


def _claim(rollout: Rollout, plan: Plan) -> bool:
    with transaction.atomic():
        lock_cluster(rollout.cluster)
        going = other_going(rollout)
        if going is not None:
            finish_without_patch(rollout, refused(plan.target, already_going(plan.target, going), action=plan.action))
            return False
        _mark_started(rollout, plan)
        if rollout.batch is None:  # a batch's requests were audited when it was queued
            _audit_request(rollout, plan)
    return True


def _mark_started(rollout: Rollout, plan: Plan) -> None:
    rollout.status, rollout.patched_at = Rollout.Status.IN_PROGRESS, timezone.now()
    rollout.pods_to_restart = [{"name": n, "uid": u} for n, u in zip(plan.pods, plan.pod_uids, strict=True)]
    rollout.desired, rollout.at_once = len(plan.pods), plan.at_once
    rollout.message = f"evicting {pods_text(plan.pods)}, {plan.at_once} at a time"
    rollout.save()


def _audit_request(rollout: Rollout, plan: Plan) -> None:
    audit(
        rollout,
        AuditEvent.Action.ROLLOUT_REQUESTED,
        f"restart of the stale pods of {plan.target} requested: {pods_text(plan.pods)} to be evicted, "
        f"{plan.at_once} at a time; {len(plan.staying)} fresh pod(s) stay",
        plan.detail(),
        actor=rollout.requested_by,
    )


def start_claimed_eviction(rollout: Rollout) -> None:
    """A batch's eviction rollout, claimed as `patching` by the batch: plan it, and start it when ready."""
    target = Target.of(rollout)
    try:
        with client_for(rollout.cluster, None) as api:
            plan = plan_eviction(rollout.cluster, target, api, at_once=rollout.at_once, claimed=rollout.pk)
            with transaction.atomic():
                locked = Rollout.objects.select_for_update().get(pk=rollout.pk)
                if locked.status != Rollout.Status.PATCHING:
                    return
                if not plan.ready:
                    finish_without_patch(locked, plan)
                    return
                _mark_started(locked, plan)
            advance_eviction(locked, api)
    except kube.KubeConfigError as error:
        finish_without_patch(rollout, refused(target, f"Cannot connect to cluster {rollout.cluster.name}: {error}"))


def advance_eviction(rollout: Rollout, client: kube.KubeClient | None = None) -> Rollout:
    """One step of an eviction rollout in progress: record how far it got, send the next group when the previous
    one's replacements are Ready, end it when all are (or past the cluster's deadline)."""
    if rollout.status != Rollout.Status.IN_PROGRESS:
        return rollout
    target = Target.of(rollout)
    try:
        with client_for(rollout.cluster, client) as api:
            workload_row = stored_workload(rollout.cluster, target.kind, target.namespace, target.name)
            if workload_row is None:
                return _end(rollout, Rollout.Status.FAILED, f"{target} is no longer known to Driftwatch")
            _, live = read_workload(api, target, workload_row)
            started = rollout.patched_at or rollout.requested_at
            step = next_step(rollout.pods_to_restart, rollout.evicted, live, started, rollout.at_once)
            if step.done or not step.evict:
                return _record(rollout, step)
            closed = closed_reason(rollout.cluster, rollout.namespace)
            if closed:  # the window closed after it started: no further pod goes until it opens again
                return _record(rollout, replace(step, evict=(), message=f"waiting: {closed}"))
            claimed = _claim_group(rollout, step)
            if claimed is None:
                return Rollout.objects.select_related("cluster").get(pk=rollout.pk)
            return _send(claimed, step, api)
    except kube.NotFound:
        return _end(rollout, Rollout.Status.FAILED, f"{target} was deleted during the rollout")
    except kube.KubeError as error:
        log.warning("cannot advance rollout %s: %s", rollout.pk, error)
        Rollout.objects.filter(pk=rollout.pk, status=Rollout.Status.IN_PROGRESS).update(
            message=f"cannot read its pods right now: {error}"
        )
        rollout.refresh_from_db()
        return rollout


def _record(rollout: Rollout, step: Step) -> Rollout:
    if step.done:
        return _end(rollout, Rollout.Status.COMPLETE, step.message, replaced=step.replaced)
    if deadline_passed(rollout):
        deadline = rollout.cluster.rollout_deadline_seconds
        return _end(
            rollout, Rollout.Status.STUCK,
            f"stuck: not complete {deadline}s after it started (cluster {rollout.cluster.name}'s rollout deadline; "
            f"{step.message}; {rollout.disruption_waits} PodDisruptionBudget wait(s)). Driftwatch evicts no more pods",
            replaced=step.replaced,
        )  # fmt: skip
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("cluster").get(pk=rollout.pk)
        if locked.status == Rollout.Status.IN_PROGRESS:
            locked.ready = locked.available = step.replaced
            locked.message = _with_waits(locked, step.message)
            locked.save(update_fields=["ready", "available", "message"])
    return locked


def _with_waits(rollout: Rollout, message: str) -> str:
    if not rollout.disruption_waits:
        return message
    return f"{message} ({rollout.disruption_waits} PodDisruptionBudget wait(s) so far)"


def _claim_group(rollout: Rollout, step: Step) -> Rollout | None:
    """Write the group about to be evicted into the row, and commit, before anything is sent; None when another
    follower moved the row on meanwhile."""
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("cluster").get(pk=rollout.pk)
        if locked.status != Rollout.Status.IN_PROGRESS or locked.evicted != rollout.evicted:
            return None
        now = timezone.now().isoformat()
        locked.evicted = [*locked.evicted, *({"name": p["name"], "uid": p["uid"], "at": now} for p in step.evict)]
        locked.updated = len(locked.evicted)
        locked.ready = locked.available = step.replaced
        locked.message = f"evicting {', '.join(p['name'] for p in step.evict)}"
        locked.save(update_fields=["evicted", "updated", "ready", "available", "message"])
    return locked


def _send(rollout: Rollout, step: Step, api: kube.KubeClient) -> Rollout:
    """Send the group's evictions. A 429 (a PodDisruptionBudget) or another certain refusal takes the pod back off
    the row: it was not evicted, and the next step tries again."""
    not_sent: list[str] = []
    waits, failure, permission = 0, "", ""
    for pod in step.evict:
        body = eviction_body(rollout.namespace, pod["name"], pod["uid"])
        try:
            api.create(eviction_path(rollout.namespace, pod["name"]), body, what=eviction_permission(rollout.namespace))
        except kube.NotFound:
            continue  # gone already: its owner replaces it all the same
        except kube.Forbidden as error:
            not_sent.append(pod["uid"])
            failure, permission = f"The eviction was refused: {error}", error.permission
        except kube.ApiRefused as error:
            if error.status == 429:
                not_sent.append(pod["uid"])
                waits += 1
            elif error.status == 409:
                continue  # the UID precondition failed: that pod was replaced meanwhile
            else:
                not_sent.append(pod["uid"])
                failure = f"The eviction of {pod['name']} was refused: {error}"
        except kube.KubeError as error:
            # No answer: the next step's read of the pods tells whether it went (a replacement is then awaited).
            log.warning("no answer to the eviction of %s: %s", pod["name"], error)
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("cluster").get(pk=rollout.pk)
        locked.evicted = [entry for entry in locked.evicted if entry["uid"] not in not_sent]
        locked.updated = len(locked.evicted)
        locked.disruption_waits += waits
        sent = [p["name"] for p in step.evict if p["uid"] not in not_sent]
        if sent:
            locked.message = f"evicted {', '.join(sent)}; waiting for the replacement(s) to be Ready"
        if waits:
            locked.message = (
                f"{'evicted ' + ', '.join(sent) + '; ' if sent else ''}a PodDisruptionBudget allows no disruption "
                f"now (429): waiting to retry"
            )
        locked.message = _with_waits(locked, locked.message) if waits else locked.message
        locked.save(update_fields=["evicted", "updated", "disruption_waits", "message"])
    if failure and locked.status == Rollout.Status.IN_PROGRESS:
        return _end(locked, Rollout.Status.FAILED, failure, permission=permission)
    return locked


def _end(rollout: Rollout, status: str, message: str, replaced: int | None = None, permission: str = "") -> Rollout:
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("cluster").get(pk=rollout.pk)
        if locked.status != Rollout.Status.IN_PROGRESS:
            return locked  # another follower recorded its end first, or an operator cancelled it
        if replaced is not None:
            locked.ready = locked.available = replaced
        locked.status, locked.finished_at, locked.message = status, timezone.now(), message
        locked.save()
        extra = {"evicted": [p["name"] for p in locked.evicted], "disruption_waits": locked.disruption_waits}
        audit_end(locked, status, message, extra | ({"permission": permission} if permission else {}))
    return locked
