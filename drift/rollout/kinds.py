"""Every kind Driftwatch can restart owns its shape here, read from the workload as the API server returns it (a
plain dict): its API group and version, where its pod template lives, how to patch it, its update strategy,
whether it is paused or busy, how far a rollout got, and which actions it offers. Pure, table-tested.

One small class per kind (as Reloader's `workload` types); `KINDS` maps the kind as Kubernetes spells it to its
class, and `ROLLABLE_KINDS` (the kinds a template patch restarts) is read from them: adding a kind means one class
here, its entry in `KINDS`, and its verbs in the chart's RBAC. A kind Driftwatch does not know, named by its pods
as their controller (an operator's custom resource: CNPG's Cluster, Strimzi's pod sets), has the rules of
`OperatorOwned`; the built-in kinds nothing restarts (a bare Pod, a Job, a static pod's Node) those of
`NotRestarted`. `rules_of(kind)` gives the rules of any kind, so callers never branch on the kind. The path and
the permission of a workload are built from validated, quoted names (drift.kube)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from drift import kube, podspec
from drift.models import Rollout
from drift.vocabulary import RolloutAction, WorkloadKind

# The controller a static pod's mirror names: the kubelet of that node, which runs the pod from a file.
NODE = "Node"

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
    NODE: (
        "A static pod (its mirror owned by Node/{name}) runs from a manifest file on that node: the kubelet recreates "
        "an evicted mirror without restarting its containers. Change or move the manifest on the node instead."
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
    # Whether Driftwatch reads the object itself (by its API group and name) and finds its pods by its label
    # selector. An operator-owned kind's API is not Driftwatch's to know: its pods are found by their owner's UID.
    reads_its_object: ClassVar[bool] = True

    @property
    def plural(self) -> str:
        return self.kind.plural

    @property
    def in_words(self) -> str:
        """Its objects in a sentence ("Deployments")."""
        return f"{self.kind}s"

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

    def restart_patch(
        self, key: str, value: str, workload: dict[str, Any] | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """The patch that restarts the workload's pods for the configuration hashed as `value` (sent as
        `patch_content_type`): here, the template's annotation `key` set to `value`. `workload` (as read) and `now`
        serve the kinds whose restart depends on them (an Argo Rollout's)."""
        return self._template_annotation_patch(key, value)

    def _template_annotation_patch(self, key: str, value: str) -> dict[str, Any]:
        patch: dict[str, Any] = {"metadata": {"annotations": {key: value}}}
        for field in reversed(self.template_at):
            patch = {field: patch}
        return patch

    def restarted_with(self, workload: dict[str, Any], key: str) -> str | None:
        """The configuration hash the workload's last restart by Driftwatch was for, where its restart patch put it
        (None when it carries none): the same value twice means there is nothing to roll out."""
        return ((self.pod_template(workload).get("metadata") or {}).get("annotations") or {}).get(key)

    def template_owner(self, workload: dict[str, Any]) -> Target | None:
        """The workload whose pod template this one runs, when its own is elsewhere (an Argo Rollout's
        workloadRef), else None."""
        return None

    def offers(self, action: str) -> bool:
        return action in self.actions

    def replacement_caveat(self, target: Target, deadline_seconds: int) -> str | None:
        """What the eviction plan must say of who replaces an evicted pod, when Driftwatch cannot know it will be
        replaced (None: the kind's own controller does, as Kubernetes documents)."""
        return None

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


# An Argo Rollout's annotation that chooses how Driftwatch restarts it: "template" patches its pod template, so the
# controller runs its canary (or blue-green) steps with a new ReplicaSet; anything else, or none, sets
# spec.restartAt, which the controller turns into evictions of the pods created before that time, its steps skipped.
ARGO_RESTART_BY = "driftwatch.io/restart-by"
ARGO_RESTART_BY_TEMPLATE = "template"


def _argo_time(value: Any) -> datetime | None:
    return podspec.parse_time(value) if isinstance(value, str) else None


def _observed(status: dict[str, Any]) -> int:
    """An Argo Rollout's status.observedGeneration: the generation as a string (very old releases wrote a hash of
    the spec, read here as nothing observed)."""
    observed = str(status.get("observedGeneration") or "")
    return int(observed) if observed.isdigit() else 0


class ArgoRollout(KindRules):
    """An Argo Rollout (argoproj.io/v1alpha1): pods owned by its ReplicaSets, its pod template in spec.template
    or, with spec.workloadRef, in the Deployment it names. Restarted by spec.restartAt by default (RFC 3339; the
    controller evicts every pod created before it, at most maxUnavailable at a time, then sets
    status.restartedAt), or by the template annotation when the Rollout asks for it (ARGO_RESTART_BY). Progress
    is its status: phase Healthy, Progressing, Degraded or Paused, restartedAt, updated and available replicas."""

    kind = WorkloadKind.ROLLOUT
    group_version = "argoproj.io/v1alpha1"
    # A custom resource takes no strategic merge patch: a JSON merge patch, whose maps merge the same way here.
    patch_content_type = "application/merge-patch+json"
    actions = (RolloutAction.TEMPLATE,)

    @property
    def in_words(self) -> str:
        return "Argo Rollouts"

    def by_template(self, workload: dict[str, Any]) -> bool:
        """Whether a restart patches the pod template (runs the steps) rather than setting restartAt. A Rollout
        with a workloadRef has no template of its own to patch: restartAt it is."""
        spec, metadata = workload.get("spec") or {}, workload.get("metadata") or {}
        asked = (metadata.get("annotations") or {}).get(ARGO_RESTART_BY) == ARGO_RESTART_BY_TEMPLATE
        return asked and not spec.get("workloadRef")

    def restart_patch(
        self, key: str, value: str, workload: dict[str, Any] | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        if self.by_template(workload or {}):
            return self._template_annotation_patch(key, value)
        # Whole seconds (RFC 3339, as metav1.Time), never ahead of the controller's clock: it acts once now is
        # after restartAt. The hash goes on the Rollout's own annotations, which start nothing, so that the same
        # configuration twice is seen as nothing to do.
        at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        return {"metadata": {"annotations": {key: value}}, "spec": {"restartAt": at.strftime("%Y-%m-%dT%H:%M:%SZ")}}

    def restarted_with(self, workload: dict[str, Any], key: str) -> str | None:
        if self.by_template(workload):
            return super().restarted_with(workload, key)
        return ((workload.get("metadata") or {}).get("annotations") or {}).get(key)

    def template_owner(self, workload: dict[str, Any]) -> Target | None:
        reference = (workload.get("spec") or {}).get("workloadRef") or {}
        kind, name = reference.get("kind", ""), reference.get("name", "")
        if kind not in (WorkloadKind.DEPLOYMENT, WorkloadKind.REPLICA_SET) or not name:
            return None
        return Target(kind, (workload.get("metadata") or {}).get("namespace", ""), name)

    def strategy(self, workload: dict[str, Any]) -> tuple[str, str | None]:
        spec = workload.get("spec") or {}
        strategy = spec.get("strategy") or {}
        if not self.by_template(workload):
            unavailable = (strategy.get("canary") or {}).get("maxUnavailable", "25%" if "canary" in strategy else 0)
            text = (
                "restartAt: the Argo Rollouts controller evicts every pod created before the restart time, "
                f"maxUnavailable ({unavailable}, at least 1) at a time, in place (no new ReplicaSet, its steps not run)"
            )
            return text, None
        if "blueGreen" in strategy:
            automatic = (strategy["blueGreen"] or {}).get("autoPromotionEnabled", True)
            promoted = "automatically" if automatic else "by hand"
            return f"blueGreen: a new ReplicaSet beside the active one, promoted {promoted}", None
        steps = len((strategy.get("canary") or {}).get("steps") or [])
        return f"canary: a new ReplicaSet, through its {steps} step(s)" if steps else "canary: a new ReplicaSet", None

    def timed_pause(self, workload: dict[str, Any]) -> str | None:
        """The duration of the canary step it is paused at, when that step is a timed pause (`pause: {duration}`):
        the controller goes on by itself, so it is under way rather than paused. None otherwise."""
        spec, status = workload.get("spec") or {}, workload.get("status") or {}
        reasons = {condition.get("reason") for condition in status.get("pauseConditions") or []}
        if spec.get("paused") or reasons != {"CanaryPauseStep"}:
            return None
        steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
        index = status.get("currentStepIndex")
        step = steps[index] if isinstance(index, int) and 0 <= index < len(steps) else {}
        duration = (step.get("pause") or {}).get("duration")
        return str(duration) if duration not in (None, "") else None

    def paused(self, workload: dict[str, Any]) -> str | None:
        spec, status = workload.get("spec") or {}, workload.get("status") or {}
        if not (spec.get("paused") or status.get("pauseConditions") or status.get("phase") == "Paused"):
            return None
        if self.timed_pause(workload):
            return None  # busy instead: it goes on by itself
        metadata = workload.get("metadata") or {}
        name, namespace = metadata.get("name", ""), metadata.get("namespace", "")
        return (
            f"Rollout/{name} is paused: the controller would not go on until someone promotes or resumes it "
            f"(kubectl argo rollouts -n {namespace} promote {name}), unless it is paused on purpose."
        )

    def _restart_pending(self, workload: dict[str, Any]) -> bool:
        asked = _argo_time((workload.get("spec") or {}).get("restartAt"))
        done = _argo_time((workload.get("status") or {}).get("restartedAt"))
        return asked is not None and asked != done

    def busy(self, workload: dict[str, Any]) -> str | None:
        generation = (workload.get("metadata") or {}).get("generation", 0)
        status = workload.get("status") or {}
        if _observed(status) < generation:
            return (
                f"a rollout is in progress: the Argo Rollouts controller has not yet acted on the latest change "
                f"(generation {generation}, observed {_observed(status)})"
            )
        if self._restart_pending(workload):
            return "a restart is in progress: pods created before spec.restartAt are still being replaced"
        if status.get("phase") == "Progressing":
            return f"a rollout is in progress: {status.get('message') or 'phase Progressing'}"
        if duration := self.timed_pause(workload):
            return f"a rollout is in progress: paused {duration} at a canary step, then it goes on"
        return None

    def progress(self, workload: dict[str, Any], generation: int) -> Progress:
        spec, status = workload.get("spec") or {}, workload.get("status") or {}
        desired, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        counts = (desired, updated, status.get("readyReplicas", 0), status.get("availableReplicas", 0))
        text = f"{updated} of {desired} updated, {counts[2]} ready, {counts[3]} available"
        phase, said = status.get("phase", ""), status.get("message", "")
        if _observed(status) < generation:
            return _at(Rollout.Status.IN_PROGRESS, counts, "waiting for the Argo Rollouts controller to see the change")
        if phase == "Degraded":
            return _at(Rollout.Status.FAILED, counts, f"degraded ({text}): {said}".rstrip(": "))
        if duration := self.timed_pause(workload):
            return _at(Rollout.Status.IN_PROGRESS, counts, f"paused {duration} at a canary step ({text}), then goes on")
        if phase == "Paused" or spec.get("paused"):
            return _at(Rollout.Status.PAUSED, counts, f"paused ({text}): {said or 'promote or resume it to go on'}")
        restarting = self._restart_pending(workload)
        if phase == "Healthy" and not restarting and updated >= desired and counts[3] >= desired:
            return _at(Rollout.Status.COMPLETE, counts, f"complete: Healthy, {text}")
        pending = "; pods created before restartAt still to be replaced" if restarting else ""
        return _at(Rollout.Status.IN_PROGRESS, counts, f"{phase or 'no phase yet'}: {text}{pending}")


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


class OperatorOwned(KindRules):
    """A kind Driftwatch does not know, named by its pods as their controller: an operator's custom resource
    (CNPG's Cluster, Strimzi's StrimziPodSet), or a ReplicationController. Driftwatch never reads the object
    itself (its API group is not recorded, and Driftwatch may not be allowed to read it): its pods are the
    namespace's pods whose controller ownerReference has its UID, as the snapshot recorded it (Workload.uid). Its
    one action is the eviction of the stale pods; that the owner replaces each is expected, not known beforehand,
    so a pod it does not replace leaves the rollout stuck at the cluster's rollout deadline."""

    actions = (RolloutAction.EVICT,)
    reads_its_object = False

    @property
    def plural(self) -> str:
        raise TypeError("an operator-owned kind has no API path Driftwatch knows: it reads the pods only")

    @property
    def in_words(self) -> str:
        return "operator-owned workloads (a kind Driftwatch does not know, named by its pods as their controller)"

    def replacement_caveat(self, target: Target, deadline_seconds: int) -> str | None:
        return (
            f"{target.kind}/{target.name} is expected to replace each evicted pod, as the operator that owns its pods "
            f"does; Driftwatch does not know the kind {target.kind} and cannot check it beforehand. If it does not, "
            f"the rollout ends stuck at the cluster's rollout deadline ({deadline_seconds}s), naming the pods not "
            "replaced."
        )

    def busy(self, workload: dict[str, Any]) -> str | None:
        return None


class NotRestarted(KindRules):
    """A bare Pod (nothing replaces an evicted one), a Job (its pods run to completion: not served) or a static pod's
    Node (the kubelet recreates the mirror without restarting the containers): no action, only what works instead
    (WHAT_WORKS_INSTEAD)."""

    actions = ()

    @property
    def in_words(self) -> str:
        return "kinds nothing restarts"

    def busy(self, workload: dict[str, Any]) -> str | None:
        return None


KINDS: dict[str, KindRules] = {
    rules.kind: rules for rules in (Deployment(), StatefulSet(), DaemonSet(), ReplicaSet(), ArgoRollout(), CronJob())
}
# The kinds whose controllers replace every pod when the template changes: what "Roll out" patches. The one
# definition; the vocabulary, the kube seam and the pages take it from here.
ROLLABLE_KINDS: frozenset[str] = frozenset(k for k, rules in KINDS.items() if rules.offers(RolloutAction.TEMPLATE))
# The kinds Driftwatch knows whose owner replaces an evicted pod. "Restart the stale pods only" also serves every kind
# it does not know (OperatorOwned): ask offers(kind, RolloutAction.EVICT).
EVICTABLE_KINDS: frozenset[str] = frozenset(k for k, rules in KINDS.items() if rules.offers(RolloutAction.EVICT))
# The kinds that start Jobs from a template: what "Run now" serves.
RUNNABLE_KINDS: frozenset[str] = frozenset(k for k, rules in KINDS.items() if rules.offers(RolloutAction.RUN_NOW))


NOT_RESTARTED_KINDS: frozenset[str] = frozenset({WorkloadKind.POD, WorkloadKind.JOB, NODE})
_OPERATOR_OWNED, _NOT_RESTARTED = OperatorOwned(), NotRestarted()


def rules_of(kind: str) -> KindRules:
    """The rules of any kind a pod names as its controller: its own class; NotRestarted's for a bare Pod, a Job or
    a static pod's Node; OperatorOwned's for every other kind (whose owner replaces an evicted pod)."""
    if kind in KINDS:
        return KINDS[kind]
    return _NOT_RESTARTED if not kind or kind in NOT_RESTARTED_KINDS else _OPERATOR_OWNED


def offers(kind: str, action: str) -> bool:
    """Whether Driftwatch offers `action` (a RolloutAction) for workloads of `kind`."""
    return rules_of(kind).offers(action)


def kinds_text(kinds: frozenset[str] | None = None, *more: str) -> str:
    """ "Deployments, StatefulSets and DaemonSets": the kinds in words, in KINDS's order, then `more` words."""
    names = [rules.in_words for kind, rules in KINDS.items() if kind in (ROLLABLE_KINDS if kinds is None else kinds)]
    names += more
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


# What "Restart the stale pods only" serves, in words.
EVICTABLE_TEXT = kinds_text(EVICTABLE_KINDS, _OPERATOR_OWNED.in_words)


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
        return self.rules.offers(RolloutAction.TEMPLATE)

    @property
    def rules(self) -> KindRules:
        return rules_of(self.kind)

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
    # An operator-owned kind: its operator writes its pods from its own spec, so Driftwatch has no template to patch.
    return (
        f"Driftwatch rolls out {kinds_text()}; {target.kind}/{target.name} is none of them: an operator owns its "
        "pods and writes them from its own spec. Restart its stale pods only (the eviction action): "
        f"{target.kind}/{target.name} is expected to replace each evicted pod. Or restart it the way its operator "
        "provides."
    )


# Function forms of the per-kind rules, as the rest of Driftwatch and the tables of tests call them.


def update_strategy(kind: str, workload: dict[str, Any]) -> tuple[str, str | None]:
    return rules_of(kind).strategy(workload)


def paused_reason(kind: str, workload: dict[str, Any]) -> str | None:
    return rules_of(kind).paused(workload)


def busy_reason(kind: str, workload: dict[str, Any]) -> str | None:
    return rules_of(kind).busy(workload)


def progress_of(kind: str, workload: dict[str, Any], generation: int) -> Progress:
    return rules_of(kind).progress(workload, generation)
