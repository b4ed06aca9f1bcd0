"""Rolling out: a strategic-merge patch of a workload's pod-template annotation, so that its controller
replaces the pods with ones that read the current ConfigMaps and Secrets.

- Pure functions read a workload as the API server returns it (a plain dict): its update strategy, whether it
  is paused or busy, which GitOps tool manages it, how far a rollout got. They are table-tested.
- `plan_rollout` asks the cluster (through drift.kube only) what a rollout would do, ending with a server-side
  dry run; `request_rollout` plans again and patches. Every request ends as one Rollout row, and every outcome
  a person should know about (requested, refused, no-op, completed, failed) as one audit entry.
- `refresh_rollout` and `advance_batch` follow rollouts to their end. The progress view and the
  `track_rollouts` Celery task both call them; row locks keep an end from being recorded twice.

The annotation's value is a hash of the current content of every ConfigMap and Secret the pod template
references, read from the API server at that moment (not from the last snapshot, which may lag): the same
configuration gives the same value, so clicking again patches nothing."""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from drift import kube, podspec
from drift.clusters import connect
from drift.hashing import current_hasher
from drift.models import AuditEvent, Cluster, Rollout
from drift.probes import ValueHasher

log = logging.getLogger(__name__)

ROLLABLE_KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}

# What a person can do instead, for the kinds a template annotation cannot restart.
WHAT_WORKS_INSTEAD = {
    "Pod": (
        "A bare Pod cannot be rolled out: no controller recreates it and its spec cannot change. Delete it and "
        "create it again to read the current configuration, or run it under a Deployment."
    ),
    "Job": (
        "A Job cannot be rolled out: its pod template cannot change once created. Delete the Job and create it "
        "again (its new pods read the current configuration), or let its CronJob start the next one."
    ),
    "CronJob": (
        "A CronJob needs no rollout: each Job it starts reads the current configuration. To run one now: "
        "kubectl -n {namespace} create job --from=cronjob/{name} {name}-now"
    ),
    "ReplicaSet": (
        "A ReplicaSet does not replace its pods when its template changes. Manage it with a Deployment, or delete "
        "its pods one at a time so that it recreates them."
    ),
}

# pg_advisory_xact_lock(namespace, key): serialises rollout decisions per cluster, without locking the
# cluster row itself (the snapshot updates that row).
_ADVISORY_LOCK_NAMESPACE = 0x0D71


@dataclass(frozen=True)
class Target:
    """A workload to roll out, by kind and name; `kind` as Kubernetes spells it (Deployment, Pod...)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} -n {self.namespace}"

    @property
    def rollable(self) -> bool:
        return self.kind in ROLLABLE_KINDS

    @property
    def plural(self) -> str:
        return ROLLABLE_KINDS[self.kind]

    def path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/{self.plural}/{self.name}"

    def permission(self, verb: str) -> str:
        return f"{verb} {self.plural}.apps in {self.namespace}"


def target_of(rollout: Rollout) -> Target:
    return Target(rollout.kind, rollout.namespace, rollout.name)


def not_rollable_reason(target: Target) -> str:
    reason = WHAT_WORKS_INSTEAD.get(target.kind)
    if reason:
        return reason.format(namespace=target.namespace, name=target.name)
    return (
        f"Driftwatch rolls out Deployments, StatefulSets and DaemonSets; {target.kind} {target.name} is none of "
        "them. Restart it the way its own controller provides."
    )


# -- pure: reading a workload --------------------------------------------------------------------------------


def update_strategy(kind: str, workload: dict[str, Any]) -> tuple[str, str | None]:
    """(how the controller will replace pods, in words; why a template patch would restart nothing, or None)."""
    spec = workload.get("spec") or {}
    name = (workload.get("metadata") or {}).get("name", "")
    if kind == "Deployment":
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return "Recreate: every pod is stopped before the new ones start (expect downtime)", None
        rolling = strategy.get("rollingUpdate") or {}
        surge, unavailable = rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")
        return f"RollingUpdate: at most {surge} extra and {unavailable} unavailable pod(s) at a time", None
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        refusal = (
            f"{kind}/{name} uses updateStrategy OnDelete: its controller replaces a pod only when someone deletes "
            "it, so a template patch would restart nothing. Delete its pods one at a time instead, or switch it "
            "to RollingUpdate."
        )
        return "OnDelete", refusal
    rolling = strategy.get("rollingUpdate") or {}
    if kind == "StatefulSet":
        text = "RollingUpdate: one pod at a time, highest ordinal first"
        partition = int(rolling.get("partition") or 0)
        if partition:
            text += f"; partition {partition}: only pods with ordinal {partition} or above are replaced"
        return text, None
    unavailable, surge = rolling.get("maxUnavailable", 1), rolling.get("maxSurge", 0)
    return f"RollingUpdate: node by node, at most {unavailable} unavailable and {surge} extra pod(s)", None


def paused_reason(kind: str, workload: dict[str, Any]) -> str | None:
    if kind != "Deployment" or not (workload.get("spec") or {}).get("paused"):
        return None
    metadata = workload.get("metadata") or {}
    name, namespace = metadata.get("name", ""), metadata.get("namespace", "")
    return (
        f"Deployment/{name} is paused: a template change would not roll out until someone resumes it. Resume it "
        f"first (kubectl -n {namespace} rollout resume deployment/{name}), unless it is paused on purpose."
    )


def _progressing(workload: dict[str, Any]) -> dict[str, Any]:
    for condition in (workload.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing":
            return condition
    return {}


def deadline_exceeded(workload: dict[str, Any]) -> bool:
    condition = _progressing(workload)
    return condition.get("status") == "False" and condition.get("reason") == "ProgressDeadlineExceeded"


def busy_reason(kind: str, workload: dict[str, Any]) -> str | None:
    """Why a rollout of this workload is under way right now (started by anyone), or None."""
    metadata, spec, status = workload.get("metadata") or {}, workload.get("spec") or {}, workload.get("status") or {}
    generation, observed = metadata.get("generation", 0), status.get("observedGeneration", 0)
    if observed < generation:
        return (
            f"a rollout is in progress: the controller has not yet acted on the latest change "
            f"(generation {generation}, observed {observed})"
        )
    if kind == "Deployment":
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
    if kind == "StatefulSet":
        desired, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0)
        if partition:
            busy = updated < desired - partition
        else:
            busy = status.get("updateRevision", "") != status.get("currentRevision", "")
        return f"a rollout is in progress: {updated} of {desired} pods updated" if busy else None
    desired, updated = status.get("desiredNumberScheduled", 0), status.get("updatedNumberScheduled", 0)
    return f"a rollout is in progress: {updated} of {desired} pods updated" if updated < desired else None


@dataclass(frozen=True)
class Progress:
    state: str  # a Rollout.Status: in_progress, complete, failed or paused
    desired: int
    updated: int
    ready: int
    available: int
    message: str


def progress_of(kind: str, workload: dict[str, Any], generation: int) -> Progress:
    """How far the rollout that produced `generation` got, as `kubectl rollout status` would judge it."""
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    observed = status.get("observedGeneration", 0) >= generation
    if kind == "DaemonSet":
        desired, updated = status.get("desiredNumberScheduled", 0), status.get("updatedNumberScheduled", 0)
        ready, available = status.get("numberReady", 0), status.get("numberAvailable", 0)
        done = updated >= desired and available >= desired
        old = 0
    else:
        desired, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        ready = status.get("readyReplicas", 0)
        available = status.get("availableReplicas", ready if kind == "StatefulSet" else 0)
        if kind == "StatefulSet":
            partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0)
            revision_done = partition > 0 or status.get("updateRevision") == status.get("currentRevision")
            done = updated >= desired - partition and ready >= desired and revision_done
            old = 0
        else:
            old = max(0, status.get("replicas", 0) - updated)
            done = updated >= desired and old == 0 and available >= desired

    def at(state: str, message: str) -> Progress:
        return Progress(state, desired, updated, ready, available, message)

    counts = f"{updated} of {desired} updated, {ready} ready, {available} available"
    if kind == "Deployment" and spec.get("paused"):
        return at(Rollout.Status.PAUSED, f"the Deployment was paused during the rollout ({counts}); resume it to go on")
    if not observed:
        return at(Rollout.Status.IN_PROGRESS, f"waiting for the {kind} controller to see the change")
    if kind == "Deployment" and deadline_exceeded(workload):
        seconds = spec.get("progressDeadlineSeconds", 600)
        detail = _progressing(workload).get("message", "")
        return at(Rollout.Status.FAILED, f"progress deadline exceeded ({seconds}s, {counts}): {detail}".rstrip(": "))
    if done:
        return at(Rollout.Status.COMPLETE, f"complete: {counts}")
    suffix = f"; {old} old pod(s) still to stop" if old else ""
    return at(Rollout.Status.IN_PROGRESS, f"{counts}{suffix}")


def gitops_warning(workload: dict[str, Any], annotation_key: str) -> str | None:
    """A warning when Argo CD or Flux manages the workload: our annotation is not in their manifests."""
    metadata = workload.get("metadata") or {}
    labels, annotations = metadata.get("labels") or {}, metadata.get("annotations") or {}
    argo_annotations = [key for key in annotations if key.startswith("argocd.argoproj.io/")]
    if "argocd.argoproj.io/instance" in labels or argo_annotations:
        tracking = annotations.get("argocd.argoproj.io/tracking-id", "")
        application = (
            labels.get("argocd.argoproj.io/instance")
            or tracking.split(":", 1)[0]
            or labels.get("app.kubernetes.io/instance")
            or "unknown"
        )
        return (
            f"Managed by Argo CD (application {application}): the {annotation_key} annotation is not in its "
            "manifests, so Argo CD will show this workload as drifted (OutOfSync), and a sync may remove the "
            "annotation again. Add it to the manifests or to the application's ignoreDifferences."
        )
    for label, what in (
        ("kustomize.toolkit.fluxcd.io/name", "Kustomization"),
        ("helm.toolkit.fluxcd.io/name", "HelmRelease"),
    ):
        if label in labels:
            owner_namespace = labels.get(label.replace("/name", "/namespace"), "")
            owner = f"{owner_namespace}/{labels[label]}" if owner_namespace else labels[label]
            return (
                f"Managed by Flux ({what} {owner}): the {annotation_key} annotation is not in its manifests, so "
                "it will show as drift there and a reconciliation may remove it again. Add it to the manifests."
            )
    return None


def selector_string(selector: dict[str, Any]) -> str:
    """A LabelSelector as the labelSelector query parameter spells it."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key", ""), expression.get("operator"), expression.get("values") or []
        if operator == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def referenced_sources(template: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod template's containers read, sorted."""
    spec = template.get("spec") or {}
    found: set[tuple[str, str]] = set()
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for consumption in podspec.consumptions_of(spec, container):
            found.add((consumption.source_kind, consumption.source_name))
    return sorted(found)


def config_hash(contents: dict[tuple[str, str], str | None]) -> str:
    """One value for the configuration a pod template reads: content hashes per source, None when absent.

    Content hashes are HMACs keyed by SECRET_KEY (drift.probes), so the annotation lets no one test guesses of
    a Secret value. A new SECRET_KEY changes every hash: the next click then rolls out once more."""
    lines = [f"{kind}/{name}={content or 'absent'}" for (kind, name), content in sorted(contents.items())]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def annotation_patch(key: str, value: str) -> dict[str, Any]:
    return {"spec": {"template": {"metadata": {"annotations": {key: value}}}}}


# -- planning against the cluster ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceState:
    kind: str
    name: str
    content_hash: str | None  # None: absent
    resource_version: str


@dataclass(frozen=True)
class Plan:
    """What a rollout would do, or why it will not happen. `outcome`: ready, refused or noop."""

    READY = "ready"
    REFUSED = "refused"
    NOOP = "noop"

    target: Target
    outcome: str
    message: str
    permission: str = ""
    annotation_key: str = ""
    config_hash: str = ""
    sources: tuple[SourceState, ...] = ()
    strategy: str = ""
    desired: int = 0
    pods: tuple[str, ...] = ()
    dry_run: str = ""
    warnings: tuple[str, ...] = ()
    generation: int | None = None

    @property
    def ready(self) -> bool:
        return self.outcome == self.READY

    def detail(self) -> dict[str, Any]:
        """What the audit entry keeps: names and hashes, never a value."""
        return {
            "config_hash": self.config_hash,
            "annotation": self.annotation_key,
            "sources": [
                {
                    "kind": s.kind,
                    "name": s.name,
                    "resource_version": s.resource_version,
                    "absent": s.content_hash is None,
                }
                for s in self.sources
            ],
            "pods": list(self.pods),
            "strategy": self.strategy,
            "dry_run": self.dry_run,
            "warnings": list(self.warnings),
            "permission": self.permission,
        }


def _refused(target: Target, message: str, permission: str = "", **known: Any) -> Plan:
    return Plan(target=target, outcome=Plan.REFUSED, message=message, permission=permission, **known)


@contextmanager
def _client_for(cluster: Cluster, client: kube.KubeClient | None) -> Iterator[kube.KubeClient]:
    if client is not None:
        yield client
        return
    with connect(cluster) as own:
        yield own


def plan_rollout(cluster: Cluster, target: Target, client: kube.KubeClient | None = None) -> Plan:
    """Read the workload and what it consumes, and ask the API server for a dry run of the patch."""
    if not target.rollable:
        return _refused(target, not_rollable_reason(target))
    try:
        with _client_for(cluster, client) as api:
            return _plan(cluster, target, api)
    except kube.Forbidden as error:
        permission = error.permission or "the needed permission"
        return _refused(
            target,
            f"The Kubernetes API refused (403): Driftwatch's credentials for cluster {cluster.name} lack "
            f"permission to {permission}. Grant it through RBAC (a Role bound to Driftwatch's user or service "
            "account), then try again.",
            permission=error.permission,
        )
    except kube.NotFound:
        return _refused(target, f"{target} does not exist (any more) in cluster {cluster.name}.")
    except kube.KubeError as error:
        return _refused(target, f"Cluster {cluster.name} did not answer as expected: {error}")


def _plan(cluster: Cluster, target: Target, api: kube.KubeClient) -> Plan:
    key = cluster.rollout_annotation
    workload = api.get(target.path(), what=target.permission("get"))
    spec = workload.get("spec") or {}
    generation = (workload.get("metadata") or {}).get("generation")
    strategy, refusal = update_strategy(target.kind, workload)
    known: dict[str, Any] = {"annotation_key": key, "strategy": strategy, "generation": generation}
    refusal = refusal or paused_reason(target.kind, workload) or _busy(cluster, target, workload)
    if refusal:
        return _refused(target, refusal, **known)

    hasher = current_hasher()
    template = spec.get("template") or {}
    sources = tuple(
        _source_state(api, target.namespace, kind, name, hasher) for kind, name in referenced_sources(template)
    )
    value = config_hash({(s.kind, s.name): s.content_hash for s in sources})
    pods = tuple(_pod_names(api, target, spec))
    desired = _desired(target.kind, workload)
    known |= {"config_hash": value, "sources": sources, "pods": pods, "desired": desired}
    current = ((template.get("metadata") or {}).get("annotations") or {}).get(key)
    if current == value:
        return Plan(target=target, outcome=Plan.NOOP, message=_noop_message(key, value, sources), **known)

    dry = api.patch(target.path(), annotation_patch(key, value), what=target.permission("patch"), dry_run=True)
    dry_generation = (dry.get("metadata") or {}).get("generation")
    if dry_generation == generation:
        return Plan(target=target, outcome=Plan.NOOP, message=_noop_message(key, value, sources), **known)
    dry_text = f"server-side dry run accepted the patch: generation {generation} would become {dry_generation}"
    warnings = [text for text in (gitops_warning(workload, key),) if text]
    if target.kind == "Deployment" and deadline_exceeded(workload):
        warnings.append("Its previous rollout failed (progress deadline exceeded); this one may fail the same way.")
    if not pods:
        warnings.append("No pod runs right now: the patch changes the template only.")
    return Plan(
        target=target,
        outcome=Plan.READY,
        message=f"{target}: {len(pods)} pod(s) will be replaced ({strategy}).",
        dry_run=dry_text,
        warnings=tuple(warnings),
        **known,
    )


def _busy(cluster: Cluster, target: Target, workload: dict[str, Any]) -> str | None:
    ours = Rollout.objects.filter(
        cluster=cluster,
        kind=target.kind,
        namespace=target.namespace,
        name=target.name,
        status=Rollout.Status.IN_PROGRESS,
    )
    for rollout in ours:
        rollout = refresh_rollout(rollout)  # it may have ended since anyone last looked
        if rollout.status == Rollout.Status.IN_PROGRESS:
            since = timezone.localtime(rollout.requested_at).strftime("%Y-%m-%d %H:%M:%S")
            return (
                f"A rollout of {target} is already in progress (requested by {rollout.requested_by} at {since}). "
                "Wait for it to finish."
            )
    reason = busy_reason(target.kind, workload)
    return f"Not now: {reason}. Wait for it to finish, then try again." if reason else None


def _desired(kind: str, workload: dict[str, Any]) -> int:
    if kind == "DaemonSet":
        return (workload.get("status") or {}).get("desiredNumberScheduled", 0)
    return (workload.get("spec") or {}).get("replicas", 1)


def _noop_message(key: str, value: str, sources: tuple[SourceState, ...]) -> str:
    names = ", ".join(f"{s.kind} {s.name}" for s in sources) or "no ConfigMap or Secret"
    return (
        f"No rollout needed: the pod template already carries {key}={value[:12]}…, the hash of the current "
        f"content of {names}. Patching again would change nothing, so nothing was sent."
    )


def _source_state(api: kube.KubeClient, namespace: str, kind: str, name: str, hasher: ValueHasher) -> SourceState:
    """The content hash of one ConfigMap or Secret as it is now. Secret values are hashed here and dropped."""
    plural = "configmaps" if kind == "ConfigMap" else "secrets"
    try:
        item = api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}", what=f"get {plural} in {namespace}")
    except kube.NotFound:
        return SourceState(kind, name, None, "")
    key_hashes: dict[str, str] = {}
    for key, value in (item.get("data") or {}).items():
        raw = base64.b64decode(value) if kind == "Secret" else value.encode("utf-8", "surrogateescape")
        key_hashes[key] = hasher.value(raw)
    binary = item.get("binaryData") or {}
    for key, value in binary.items():
        key_hashes[key] = hasher.value(base64.b64decode(value))
    # The same recipe as the snapshot's SourceVersion.content_hash, so a page can name the version.
    content = ValueHasher.content(key_hashes, sorted(binary))
    return SourceState(kind, name, content, (item.get("metadata") or {}).get("resourceVersion", ""))


def _pod_names(api: kube.KubeClient, target: Target, spec: dict[str, Any]) -> list[str]:
    selector = selector_string(spec.get("selector") or {})
    if not selector:
        return []
    pods = api.list_paginated(
        f"/api/v1/namespaces/{target.namespace}/pods", what=f"list pods in {target.namespace}", label_selector=selector
    )
    return sorted(
        (pod.get("metadata") or {}).get("name", "")
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
    )


# -- requesting ------------------------------------------------------------------------------------------------


def _lock_cluster(cluster: Cluster) -> None:
    """One rollout decision at a time per cluster, until the transaction ends: two clicks cannot both pass
    the in-progress check and both patch."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_ADVISORY_LOCK_NAMESPACE, cluster.pk])


def request_rollout(
    cluster: Cluster, target: Target, actor: str, *, dry_run: bool = False, client: kube.KubeClient | None = None
) -> tuple[Rollout, Plan]:
    """Plan again (what the confirmation panel showed may be old) and patch. Never raises for the cluster's
    answers: a refusal, a no-op or a dry run is recorded like a rollout."""
    with transaction.atomic():
        _lock_cluster(cluster)
        rollout = Rollout(
            cluster=cluster,
            kind=target.kind,
            namespace=target.namespace,
            name=target.name,
            requested_by=actor,
            annotation_key=cluster.rollout_annotation,
            status=Rollout.Status.QUEUED,
        )
        plan = _carry_out(rollout, dry_run=dry_run, client=client)
    return rollout, plan


def record_outcome(cluster: Cluster, plan: Plan, actor: str) -> Rollout:
    """Record a plan that ended without a patch (refused or no-op), as when the Roll out button found it so."""
    if plan.ready:
        raise ValueError("record_outcome is for refused and no-op plans; use request_rollout to patch")
    rollout = Rollout(
        cluster=cluster,
        kind=plan.target.kind,
        namespace=plan.target.namespace,
        name=plan.target.name,
        requested_by=actor,
        annotation_key=plan.annotation_key or cluster.rollout_annotation,
    )
    with transaction.atomic():
        _finish_without_patch(rollout, plan)
    return rollout


def _carry_out(rollout: Rollout, dry_run: bool = False, client: kube.KubeClient | None = None) -> Plan:
    """Plan and patch for a new or queued Rollout, and record how it went. Runs inside a transaction."""
    target = target_of(rollout)
    if client is None and target.rollable:
        try:
            own = connect(rollout.cluster)
        except kube.KubeError as error:
            plan = _refused(target, f"Cannot connect to cluster {rollout.cluster.name}: {error}")
            _finish_without_patch(rollout, plan)
            return plan
        with own:
            return _carry_out(rollout, dry_run, own)
    plan = plan_rollout(rollout.cluster, target, client)
    rollout.annotation_key = plan.annotation_key or rollout.annotation_key
    rollout.config_hash, rollout.desired, rollout.generation = plan.config_hash, plan.desired, plan.generation
    if not plan.ready:
        _finish_without_patch(rollout, plan)
        return plan
    if dry_run:
        rollout.status, rollout.finished_at = Rollout.Status.DRY_RUN, timezone.now()
        rollout.message = f"dry run: {plan.message} The {plan.dry_run}."
        rollout.save()
        return plan
    assert client is not None  # a ready plan is of a rollable kind, for which a client was opened above
    patch = annotation_patch(plan.annotation_key, plan.config_hash)
    try:
        patched = client.patch(target.path(), patch, what=target.permission("patch"))
    except kube.KubeError as error:
        permission = getattr(error, "permission", "")
        plan = replace(plan, outcome=Plan.REFUSED, message=f"The patch was not applied: {error}", permission=permission)
        _finish_without_patch(rollout, plan)
        return plan
    generation = (patched.get("metadata") or {}).get("generation")
    if generation == plan.generation:  # someone set the same value between the dry run and now
        plan = replace(
            plan, outcome=Plan.NOOP, message=_noop_message(plan.annotation_key, plan.config_hash, plan.sources)
        )
        _finish_without_patch(rollout, plan)
        return plan
    rollout.status, rollout.generation = Rollout.Status.IN_PROGRESS, generation
    rollout.message = (
        f"patched {plan.annotation_key}={plan.config_hash[:12]}…; generation {plan.generation} → {generation}"
    )
    rollout.save()
    if rollout.batch is None:  # a batch's requests were audited when it was queued
        _audit(
            rollout,
            AuditEvent.Action.ROLLOUT_REQUESTED,
            f"rollout of {target} requested: {_pods_text(plan.pods)} to be replaced ({plan.strategy})",
            plan.detail() | {"generation": generation},
            actor=rollout.requested_by,
        )
    return plan


def _pods_text(pods: tuple[str, ...]) -> str:
    if not pods:
        return "no pod"
    shown = ", ".join(pods[:5]) + (f" and {len(pods) - 5} more" if len(pods) > 5 else "")
    return f"{len(pods)} pod(s) ({shown})"


def _finish_without_patch(rollout: Rollout, plan: Plan) -> None:
    refused = plan.outcome == Plan.REFUSED
    rollout.status = Rollout.Status.REFUSED if refused else Rollout.Status.NOOP
    rollout.message, rollout.finished_at = plan.message, timezone.now()
    rollout.config_hash, rollout.desired = plan.config_hash, plan.desired
    rollout.save()
    action = AuditEvent.Action.ROLLOUT_REFUSED if refused else AuditEvent.Action.ROLLOUT_NOOP
    verb = "refused" if refused else "not needed"
    _audit(rollout, action, f"rollout of {plan.target} {verb}: {plan.message}", plan.detail(), rollout.requested_by)


def _audit(rollout: Rollout, action: str, message: str, detail: dict[str, Any], actor: str) -> None:
    AuditEvent.objects.create(
        actor=actor,
        action=action,
        cluster_name=rollout.cluster.name,
        namespace=rollout.namespace,
        object_kind=rollout.kind,
        object_name=rollout.name,
        message=message,
        detail={"rollout": rollout.pk, "batch": str(rollout.batch) if rollout.batch else None, **detail},
    )


# -- following -----------------------------------------------------------------------------------------------


def refresh_rollout(rollout: Rollout, client: kube.KubeClient | None = None) -> Rollout:
    """Read the workload's status and record the rollout's progress; at its end, audit it, and after a
    completed one ask for a snapshot so the new pods get judged."""
    if rollout.status != Rollout.Status.IN_PROGRESS:
        return rollout
    target = target_of(rollout)
    try:
        with _client_for(rollout.cluster, client) as api:
            workload = api.get(target.path(), what=target.permission("get"))
        progress = progress_of(target.kind, workload, rollout.generation or 0)
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
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("cluster").get(pk=rollout.pk)
        if locked.status != Rollout.Status.IN_PROGRESS:
            return locked  # another follower recorded its end first
        locked.desired, locked.updated = progress.desired, progress.updated
        locked.ready, locked.available = progress.ready, progress.available
        locked.message = progress.message
        if progress.state != Rollout.Status.IN_PROGRESS:
            locked.status, locked.finished_at = progress.state, timezone.now()
            _audit_end(locked, progress)
        locked.save()
    return locked


def _audit_end(rollout: Rollout, progress: Progress) -> None:
    target = target_of(rollout)
    counts = {"desired": progress.desired, "updated": progress.updated, "ready": progress.ready}
    detail = counts | {"available": progress.available, "status": progress.state, "requested_by": rollout.requested_by}
    if progress.state == Rollout.Status.COMPLETE:
        _audit(
            rollout,
            AuditEvent.Action.ROLLOUT_COMPLETED,
            f"rollout of {target} {progress.message}",
            detail,
            rollout.requested_by,
        )
        from drift.tasks import snapshot_cluster  # late import: drift.tasks imports this module

        snapshot_cluster.delay_on_commit(rollout.cluster_id)
    else:
        verb = "paused" if progress.state == Rollout.Status.PAUSED else "failed"
        _audit(
            rollout,
            AuditEvent.Action.ROLLOUT_FAILED,
            f"rollout of {target} {verb}: {progress.message}",
            detail,
            rollout.requested_by,
        )


# -- batches -------------------------------------------------------------------------------------------------


def queue_batch(requests: list[tuple[Cluster, Target]], actor: str) -> uuid.UUID:
    """Queue several rollouts under one batch id; `advance_batch` starts them, a cluster's
    `rollout_batch_size` at a time, each group once the previous one has finished."""
    batch = uuid.uuid4()
    with transaction.atomic():
        for position, (cluster, target) in enumerate(requests, start=1):
            rollout = Rollout.objects.create(
                cluster=cluster,
                kind=target.kind,
                namespace=target.namespace,
                name=target.name,
                requested_by=actor,
                annotation_key=cluster.rollout_annotation,
                status=Rollout.Status.QUEUED,
                batch=batch,
            )
            _audit(
                rollout,
                AuditEvent.Action.ROLLOUT_REQUESTED,
                f"rollout of {target} requested in a batch of {len(requests)} (position {position}; "
                f"{cluster.rollout_batch_size} at a time)",
                {"position": position, "batch_size": cluster.rollout_batch_size},
                actor,
            )
    return batch


def advance_batch(batch: uuid.UUID) -> list[Rollout]:
    """Follow a batch: refresh its running rollouts and, per cluster, start the next group once none runs.
    A failed or paused rollout stops what is still queued for its cluster: a bad configuration should not
    reach every workload. Returns the batch's rollouts in order."""
    for rollout in Rollout.objects.filter(batch=batch, status=Rollout.Status.IN_PROGRESS).select_related("cluster"):
        refresh_rollout(rollout)
    with transaction.atomic():
        rows = list(Rollout.objects.select_for_update().filter(batch=batch).select_related("cluster").order_by("id"))
        by_cluster: dict[int, list[Rollout]] = {}
        for rollout in rows:
            by_cluster.setdefault(rollout.cluster_id, []).append(rollout)
        for group in by_cluster.values():
            _advance_group(group)
    return rows


def _advance_group(group: list[Rollout]) -> None:
    if any(rollout.status == Rollout.Status.IN_PROGRESS for rollout in group):
        return
    queued = [rollout for rollout in group if rollout.status == Rollout.Status.QUEUED]
    if not queued:
        return
    broken = next((r for r in group if r.status in (Rollout.Status.FAILED, Rollout.Status.PAUSED)), None)
    if broken is not None:
        ended = broken.get_status_display().lower()
        for rollout in queued:
            plan = _refused(
                target_of(rollout),
                f"Not started: the rollout of {target_of(broken)} in the same batch {ended}; the rest of the batch "
                "was stopped.",
            )
            _finish_without_patch(rollout, plan)
        return
    cluster = group[0].cluster
    _lock_cluster(cluster)
    started = 0
    for rollout in queued:
        if started >= max(1, cluster.rollout_batch_size):
            break
        _carry_out(rollout)
        if rollout.status == Rollout.Status.IN_PROGRESS:
            started += 1


def follow_rollouts() -> dict[str, int]:
    """Everything that is moving: refresh rollouts in progress and advance batches with queued rollouts."""
    refreshed = 0
    for rollout in Rollout.objects.filter(status=Rollout.Status.IN_PROGRESS, batch=None).select_related("cluster"):
        refresh_rollout(rollout)
        refreshed += 1
    batches = set(
        Rollout.objects.filter(status__in=[Rollout.Status.IN_PROGRESS, Rollout.Status.QUEUED])
        .exclude(batch=None)
        .values_list("batch", flat=True)
    )
    for batch in batches:
        advance_batch(batch)
    return {"refreshed": refreshed, "batches": len(batches)}
