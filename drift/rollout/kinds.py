"""Every kind Driftwatch can restart owns its shape here, read from the workload as the API server returns it (a
plain dict): its API group and version, where its pod template lives, how to patch it, its update strategy,
whether it is paused or busy, how far a rollout got, and which actions it offers. Pure, table-tested.

One small class per kind (as Reloader's `workload` types); `KINDS` maps the kind as Kubernetes spells it to its
class, and `ROLLABLE_KINDS` (the kinds a template patch restarts) is read from them: adding a kind means one class
here, its entry in `KINDS`, and its verbs in the chart's RBAC. Callers never branch on the kind. The path and
the permission of a workload are built from validated, quoted names (drift.kube)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from drift import kube
from drift.models import Rollout
from drift.vocabulary import RolloutAction, WorkloadKind

# What a person can do instead, for the kinds a template annotation cannot restart.
WHAT_WORKS_INSTEAD: dict[str, str] = {
    WorkloadKind.POD: (
        "A bare Pod cannot be rolled out: no controller recreates it and its spec cannot change. Delete it and "
        "create it again to read the current configuration, or run it under a Deployment."
    ),
    WorkloadKind.JOB: (
        "A Job cannot be rolled out: its pod template cannot change once created. Delete the Job and create it "
        "again (its new pods read the current configuration), or let its CronJob start the next one."
    ),
    WorkloadKind.CRON_JOB: (
        "A CronJob needs no rollout: each Job it starts reads the current configuration. To run one now, use Run "
        "now (or kubectl -n {namespace} create job --from=cronjob/{name} {name}-now)."
    ),
    WorkloadKind.REPLICA_SET: (
        "A ReplicaSet does not replace its pods when its template changes. Restart its stale pods only (it "
        "recreates each evicted pod), or manage it with a Deployment."
    ),
}


@dataclass(frozen=True)
class Progress:
    state: str  # a Rollout.Status: in_progress, complete, failed or paused
    desired: int
    updated: int
    ready: int
    available: int
    message: str


def _progressing(workload: dict[str, Any]) -> dict[str, Any]:
    for condition in (workload.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing":
            return condition
    return {}


def deadline_exceeded(workload: dict[str, Any]) -> bool:
    condition = _progressing(workload)
    return condition.get("status") == "False" and condition.get("reason") == "ProgressDeadlineExceeded"


def controller_owner(workload: dict[str, Any]) -> str | None:
    """ "Kind/name" of the controller that owns the workload (an ownerReference with controller: true), or None.
    Such an owner (Knative, an operator) writes the workload's template back from its own spec."""
    for reference in (workload.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return f"{reference.get('kind', '?')}/{reference.get('name', '?')}"
    return None


def owned_reason(kind: str, workload: dict[str, Any]) -> str | None:
    """Why a template patch must not be sent to a workload another controller owns, or None."""
    owner = controller_owner(workload)
    if owner is None:
        return None
    name = (workload.get("metadata") or {}).get("name", "")
    return (
        f"{kind}/{name} is owned by {owner}; it would revert the change (it writes the template back from its own "
        f"spec). Restart it through {owner}, or restart the stale pods only: their owner replaces evicted pods."
    )


def _partition(spec: dict[str, Any]) -> int:
    return int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0)


def _generation_reason(workload: dict[str, Any]) -> str | None:
    generation = (workload.get("metadata") or {}).get("generation", 0)
    observed = (workload.get("status") or {}).get("observedGeneration", 0)
    if observed < generation:
        return (
            f"a rollout is in progress: the controller has not yet acted on the latest change "
            f"(generation {generation}, observed {observed})"
        )
    return None


class KindRules:
    """The shape and rules of one kind. Subclasses say where its template lives, how to read its strategy,
    business and progress, and which actions it offers."""

    kind: ClassVar[WorkloadKind]
    # The API group and version its objects are served under, and its resource name in paths and RBAC.
    group_version: ClassVar[str] = "apps/v1"
    # Where its pod template lives in the object (a CronJob's or an Argo Rollout's differs).
    template_at: ClassVar[tuple[str, ...]] = ("spec", "template")
    # How a restart patch is sent: a strategic merge of the template's annotation.
    patch_content_type: ClassVar[str] = "application/strategic-merge-patch+json"
    # What Driftwatch can do with it: a template patch (the controller replaces every pod), an eviction of the
    # stale pods only (the owner replaces each). The first is what "rollable" means.
    actions: ClassVar[tuple[RolloutAction, ...]] = (RolloutAction.TEMPLATE, RolloutAction.EVICT)
    # Whether the controller itself gives up on a rollout (a Deployment's progressDeadlineSeconds). Kinds
    # without one can stay "in progress" forever: Driftwatch's own per-cluster deadline ends them.
    has_own_deadline: ClassVar[bool] = False

    @property
    def plural(self) -> str:
        return self.kind.plural

    def path(self, namespace: str, name: str) -> str:
        return kube.workload_path(self.group_version, self.plural, namespace, name)

    def permission(self, verb: str, namespace: str) -> str:
        return kube.workload_permission(self.group_version, self.plural, verb, namespace)

    def pod_template(self, workload: dict[str, Any]) -> dict[str, Any]:
        """Its pod template ({} when it has none)."""
        found: Any = workload
        for key in self.template_at:
            found = (found or {}).get(key) if isinstance(found, dict) else None
        return found if isinstance(found, dict) else {}

    def restart_patch(self, key: str, value: str) -> dict[str, Any]:
        """The patch that sets the template's annotation `key` to `value` (sent as `patch_content_type`)."""
        patch: dict[str, Any] = {"metadata": {"annotations": {key: value}}}
        for field in reversed(self.template_at):
            patch = {field: patch}
        return patch

    def offers(self, action: str) -> bool:
        return action in self.actions

    def strategy(self, workload: dict[str, Any]) -> tuple[str, str | None]:
        """(how the controller will replace pods, in words; why a template patch would restart nothing, or None)."""
        spec = workload.get("spec") or {}
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            name = (workload.get("metadata") or {}).get("name", "")
            refusal = (
                f"{self.kind}/{name} uses updateStrategy OnDelete: its controller replaces a pod only when someone "
                "deletes it, so a template patch would restart nothing. Delete its pods one at a time instead, or "
                "switch it to RollingUpdate."
            )
            return "OnDelete", refusal
        return self._rolling_text(spec, strategy.get("rollingUpdate") or {}), None

    def _rolling_text(self, spec: dict[str, Any], rolling: dict[str, Any]) -> str:
        raise NotImplementedError

    def paused(self, workload: dict[str, Any]) -> str | None:
        return None

    def busy(self, workload: dict[str, Any]) -> str | None:
        """Why a rollout of this workload is under way right now (started by anyone), or None."""
        raise NotImplementedError

    def desired(self, workload: dict[str, Any]) -> int:
        return (workload.get("spec") or {}).get("replicas", 1)

    def progress(self, workload: dict[str, Any], generation: int) -> Progress:
        """How far the rollout that produced `generation` got, as `kubectl rollout status` would judge it."""
        raise NotImplementedError


def _at(state: str, counts: tuple[int, int, int, int], message: str) -> Progress:
    return Progress(state, *counts, message)


def _judge(kind: str, observed: bool, done: bool, counts: tuple[int, int, int, int], old: int = 0) -> Progress:
    desired, updated, ready, available = counts
    text = f"{updated} of {desired} updated, {ready} ready, {available} available"
    if not observed:
        return _at(Rollout.Status.IN_PROGRESS, counts, f"waiting for the {kind} controller to see the change")
    if done:
        return _at(Rollout.Status.COMPLETE, counts, f"complete: {text}")
    suffix = f"; {old} old pod(s) still to stop" if old else ""
    return _at(Rollout.Status.IN_PROGRESS, counts, f"{text}{suffix}")


class Deployment(KindRules):
    kind = WorkloadKind.DEPLOYMENT
    has_own_deadline = True

    def strategy(self, workload: dict[str, Any]) -> tuple[str, str | None]:
        strategy = (workload.get("spec") or {}).get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return "Recreate: every pod is stopped before the new ones start (expect downtime)", None
        rolling = strategy.get("rollingUpdate") or {}
        surge, unavailable = rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")
        return f"RollingUpdate: at most {surge} extra and {unavailable} unavailable pod(s) at a time", None

    def paused(self, workload: dict[str, Any]) -> str | None:
        if not (workload.get("spec") or {}).get("paused"):
            return None
        metadata = workload.get("metadata") or {}
        name, namespace = metadata.get("name", ""), metadata.get("namespace", "")
        return (
            f"Deployment/{name} is paused: a template change would not roll out until someone resumes it. Resume it "
            f"first (kubectl -n {namespace} rollout resume deployment/{name}), unless it is paused on purpose."
        )

    def busy(self, workload: dict[str, Any]) -> str | None:
        reason = _generation_reason(workload)
        if reason:
            return reason
        spec, status = workload.get("spec") or {}, workload.get("status") or {}
        condition = _progressing(workload)
        # Progressing=True/NewReplicaSetAvailable: the last rollout finished, whatever happened to pods since.
        # ProgressDeadlineExceeded: it is stuck, and a new template may be what fixes it.
        if condition.get("reason") in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
            return None
        desired, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        total, available = status.get("replicas", 0), status.get("availableReplicas", 0)
        if condition or updated < desired or total > updated or available < desired:
            return f"a rollout is in progress: {updated} of {desired} pods updated, {available} available"
        return None

    def progress(self, workload: dict[str, Any], generation: int) -> Progress:
        spec, status = workload.get("spec") or {}, workload.get("status") or {}
        desired, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        counts = (desired, updated, status.get("readyReplicas", 0), status.get("availableReplicas", 0))
        text = f"{updated} of {desired} updated, {counts[2]} ready, {counts[3]} available"
        if spec.get("paused"):
            message = f"the Deployment was paused during the rollout ({text}); resume it to go on"
            return _at(Rollout.Status.PAUSED, counts, message)
        observed = status.get("observedGeneration", 0) >= generation
        if observed and deadline_exceeded(workload):
            seconds = spec.get("progressDeadlineSeconds", 600)
            detail = _progressing(workload).get("message", "")
            return _at(
                Rollout.Status.FAILED, counts, f"progress deadline exceeded ({seconds}s, {text}): {detail}".rstrip(": ")
            )
        old = max(0, status.get("replicas", 0) - updated)
        done = updated >= desired and old == 0 and counts[3] >= desired
        return _judge(self.kind, observed, done, counts, old)


class StatefulSet(KindRules):
    kind = WorkloadKind.STATEFUL_SET

    def _rolling_text(self, spec: dict[str, Any], rolling: dict[str, Any]) -> str:
        text = "RollingUpdate: one pod at a time, highest ordinal first"
        partition = _partition(spec)
        if partition:
            text += f"; partition {partition}: only pods with ordinal {partition} or above are replaced"
        return text

    def busy(self, workload: dict[str, Any]) -> str | None:
        reason = _generation_reason(workload)
        if reason:
            return reason
        spec, status = workload.get("spec") or {}, workload.get("status") or {}
        desired, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        partition = _partition(spec)
        if partition:
            busy = updated < desired - partition
        else:
            busy = status.get("updateRevision", "") != status.get("currentRevision", "")
        return f"a rollout is in progress: {updated} of {desired} pods updated" if busy else None

    def progress(self, workload: dict[str, Any], generation: int) -> Progress:
        spec, status = workload.get("spec") or {}, workload.get("status") or {}
        desired, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        ready = status.get("readyReplicas", 0)
        counts = (desired, updated, ready, status.get("availableReplicas", ready))
        partition = _partition(spec)
        revision_done = partition > 0 or status.get("updateRevision") == status.get("currentRevision")
        done = updated >= desired - partition and ready >= desired and revision_done
        return _judge(self.kind, status.get("observedGeneration", 0) >= generation, done, counts)


class DaemonSet(KindRules):
    kind = WorkloadKind.DAEMON_SET

    def _rolling_text(self, spec: dict[str, Any], rolling: dict[str, Any]) -> str:
        unavailable, surge = rolling.get("maxUnavailable", 1), rolling.get("maxSurge", 0)
        return f"RollingUpdate: node by node, at most {unavailable} unavailable and {surge} extra pod(s)"

    def busy(self, workload: dict[str, Any]) -> str | None:
        reason = _generation_reason(workload)
        if reason:
            return reason
        status = workload.get("status") or {}
        desired, updated = status.get("desiredNumberScheduled", 0), status.get("updatedNumberScheduled", 0)
        return f"a rollout is in progress: {updated} of {desired} pods updated" if updated < desired else None

    def desired(self, workload: dict[str, Any]) -> int:
        return (workload.get("status") or {}).get("desiredNumberScheduled", 0)

    def progress(self, workload: dict[str, Any], generation: int) -> Progress:
        status = workload.get("status") or {}
        desired, updated = status.get("desiredNumberScheduled", 0), status.get("updatedNumberScheduled", 0)
        counts = (desired, updated, status.get("numberReady", 0), status.get("numberAvailable", 0))
        done = updated >= desired and counts[3] >= desired
        return _judge(self.kind, status.get("observedGeneration", 0) >= generation, done, counts)


class ReplicaSet(KindRules):
    """A bare ReplicaSet: its controller keeps the pod count but never replaces a pod when the template changes,
    so it offers the eviction of its stale pods only (each replacement reads the current configuration)."""

    kind = WorkloadKind.REPLICA_SET
    actions = (RolloutAction.EVICT,)

    def strategy(self, workload: dict[str, Any]) -> tuple[str, str | None]:
        return "none: a ReplicaSet replaces a pod only when it is gone", WHAT_WORKS_INSTEAD[self.kind]

    def busy(self, workload: dict[str, Any]) -> str | None:
        return None

    def progress(self, workload: dict[str, Any], generation: int) -> Progress:
        status = workload.get("status") or {}
        ready = status.get("readyReplicas", 0)
        counts = (self.desired(workload), 0, ready, status.get("availableReplicas", 0))
        return _at(Rollout.Status.COMPLETE, counts, f"{ready} ready")


class CronJob(KindRules):
    """A CronJob needs no rollout: each Job it starts reads the configuration as it is then. Its one action is Run
    now, a Job made from its jobTemplate (drift.rollout.run_now), as `kubectl create job --from=cronjob/NAME`."""

    kind = WorkloadKind.CRON_JOB
    group_version = "batch/v1"
    template_at = ("spec", "jobTemplate", "spec", "template")
    actions = (RolloutAction.RUN_NOW,)

    def strategy(self, workload: dict[str, Any]) -> tuple[str, str | None]:
        return "none: each Job it starts reads the current configuration", WHAT_WORKS_INSTEAD[self.kind]

    def busy(self, workload: dict[str, Any]) -> str | None:
        return None


KINDS: dict[str, KindRules] = {
    rules.kind: rules for rules in (Deployment(), StatefulSet(), DaemonSet(), ReplicaSet(), CronJob())
}
# The kinds whose controllers replace every pod when the template changes: what "Roll out" patches. The one
# definition; the vocabulary, the kube seam and the pages take it from here.
ROLLABLE_KINDS: frozenset[str] = frozenset(k for k, rules in KINDS.items() if rules.offers(RolloutAction.TEMPLATE))
# The kinds whose owner replaces an evicted pod: what "Restart the stale pods only" serves.
EVICTABLE_KINDS: frozenset[str] = frozenset(k for k, rules in KINDS.items() if rules.offers(RolloutAction.EVICT))
# The kinds that start Jobs from a template: what "Run now" serves.
RUNNABLE_KINDS: frozenset[str] = frozenset(k for k, rules in KINDS.items() if rules.offers(RolloutAction.RUN_NOW))


def kinds_text(kinds: frozenset[str] | None = None) -> str:
    """ "Deployments, StatefulSets and DaemonSets": the kinds in words, in KINDS's order."""
    names = [f"{kind}s" for kind in KINDS if kind in (ROLLABLE_KINDS if kinds is None else kinds)]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


@dataclass(frozen=True)
class Target:
    """A workload to roll out, by kind and name; `kind` as Kubernetes spells it (Deployment, Pod...).
    The names are checked as Kubernetes checks them: a Target never holds a name that could leave its path."""

    kind: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        kube.validate_namespace(self.namespace)
        kube.validate_name(self.name)

    @classmethod
    def of(cls, workload: Any) -> Target:
        """The Target of a Workload or Rollout row (anything with kind, namespace and name)."""
        return cls(workload.kind, workload.namespace, workload.name)

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} -n {self.namespace}"

    @property
    def rollable(self) -> bool:
        return self.kind in ROLLABLE_KINDS

    @property
    def rules(self) -> KindRules:
        return KINDS[self.kind]

    @property
    def plural(self) -> str:
        return self.rules.plural

    def path(self) -> str:
        return self.rules.path(self.namespace, self.name)

    def permission(self, verb: str) -> str:
        return self.rules.permission(verb, self.namespace)


def not_rollable_reason(target: Target) -> str:
    reason = WHAT_WORKS_INSTEAD.get(target.kind)
    if reason:
        return reason.format(namespace=target.namespace, name=target.name)
    return (
        f"Driftwatch rolls out {kinds_text()}; {target.kind} {target.name} is none of "
        "them. Restart it the way its own controller provides."
    )


# Function forms of the per-kind rules, as the rest of Driftwatch and the tables of tests call them.


def update_strategy(kind: str, workload: dict[str, Any]) -> tuple[str, str | None]:
    return KINDS[kind].strategy(workload)


def paused_reason(kind: str, workload: dict[str, Any]) -> str | None:
    return KINDS[kind].paused(workload) if kind in KINDS else None


def busy_reason(kind: str, workload: dict[str, Any]) -> str | None:
    return KINDS[kind].busy(workload)


def progress_of(kind: str, workload: dict[str, Any], generation: int) -> Progress:
    return KINDS[kind].progress(workload, generation)
