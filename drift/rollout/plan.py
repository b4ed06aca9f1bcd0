"""What a rollout would do, read only: the workload, what its template reads, its pods, and a server-side dry
run of the patch. Planning writes no row and sends nothing that changes the cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from drift import kube
from drift.clusters import connect
from drift.hashing import ValueHasher, current_hasher, raw_values
from drift.models import Cluster, Rollout
from drift.rollout.kinds import Target, deadline_exceeded, not_rollable_reason, owned_reason
from drift.rollout.preview import PodPreview, preview_restart, stored_workload
from drift.rollout.template import (
    config_hash,
    gitops_warning,
    referenced_sources,
    restart_tool_warning,
    selector_string,
)
from drift.rollout.windows import closed_reason
from drift.vocabulary import RolloutAction, SourceKind, WorkloadKind


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
    # Refused for a fault that passes (the API server unreachable or not ready): a batch tries it again later.
    retry: bool = False
    # The eviction action (drift.rollout.evict): the pods that go (`pods`, with their UIDs), the fresh ones that
    # stay, how many go at once, and per pod going what changes for it (drift.rollout.preview).
    action: str = RolloutAction.TEMPLATE
    pod_uids: tuple[str, ...] = ()
    staying: tuple[str, ...] = ()
    at_once: int = 1
    previews: tuple[PodPreview, ...] = ()
    # The restart patch itself (drift.rollout.kinds: `restart_patch`), as the dry run was sent and the patch is.
    patch: dict[str, Any] = field(default_factory=dict)
    # Roll out (the template action): (name, verdict) of the pods a full rollout replaces though they need no
    # restart (fresh, or not judged stale), beside the previews of those it fixes.
    restarted_anyway: tuple[tuple[str, str], ...] = ()

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
            "action": str(self.action),
            **({"staying": list(self.staying), "at_once": self.at_once} if self.action == RolloutAction.EVICT else {}),
            "strategy": self.strategy,
            "dry_run": self.dry_run,
            "warnings": list(self.warnings),
            "permission": self.permission,
        }


def forbidden_text(cluster: Cluster, error: kube.Forbidden) -> str:
    """What a 403 from the API server means for an action, and how to fix it: every action says it so."""
    permission = error.permission or "the needed permission"
    return (
        f"The Kubernetes API refused (403): Driftwatch's credentials for cluster {cluster.name} lack permission to "
        f"{permission}. Grant it through RBAC (a Role bound to Driftwatch's user or service account), then try again."
    )


def refused(target: Target, message: str, permission: str = "", **known: Any) -> Plan:
    return Plan(target=target, outcome=Plan.REFUSED, message=message, permission=permission, **known)


def noop_message(key: str, value: str, sources: tuple[SourceState, ...]) -> str:
    names = ", ".join(f"{s.kind} {s.name}" for s in sources) or "no ConfigMap or Secret"
    return (
        f"No rollout needed: the workload already carries {key}={value[:12]}…, the hash of the current "
        f"content of {names}. Patching again would change nothing, so nothing was sent."
    )


@contextmanager
def client_for(cluster: Cluster, client: kube.KubeClient | None) -> Iterator[kube.KubeClient]:
    if client is not None:
        yield client
        return
    with connect(cluster) as own:
        yield own


def plan_rollout(
    cluster: Cluster, target: Target, client: kube.KubeClient | None = None, *, claimed: int | None = None
) -> Plan:
    """Read the workload and what it consumes, and ask the API server for a dry run of the patch. `claimed`:
    the id of the batch row this plan is for (already `patching`), which must not count as busy."""
    if not target.rollable:
        return refused(target, not_rollable_reason(target))
    closed = closed_reason(cluster, target.namespace)
    if closed:
        return refused(target, closed)
    try:
        with client_for(cluster, client) as api:
            return _plan(cluster, target, api, claimed)
    except kube.Forbidden as error:
        return refused(target, forbidden_text(cluster, error), permission=error.permission)
    except kube.NotFound:
        return refused(target, f"{target} does not exist (any more) in cluster {cluster.name}.")
    except kube.Unreachable as error:
        return refused(target, f"Cluster {cluster.name} is unreachable: {error}", retry=True)
    except kube.KubeError as error:
        passing = isinstance(error, kube.ApiRefused) and (error.status >= 500 or error.status == 429)
        return refused(target, f"Cluster {cluster.name} did not answer as expected: {error}", retry=passing)


def _plan(cluster: Cluster, target: Target, api: kube.KubeClient, claimed: int | None) -> Plan:
    key, rules = cluster.rollout_annotation, target.rules
    workload = api.get(target.path(), what=target.permission("get"))
    spec = workload.get("spec") or {}
    generation = (workload.get("metadata") or {}).get("generation")
    strategy, refusal = rules.strategy(workload)
    known: dict[str, Any] = {"annotation_key": key, "strategy": strategy, "generation": generation}
    refusal = owned_reason(target.kind, workload) or refusal
    refusal = refusal or rules.paused(workload) or busy(cluster, target, workload, claimed)
    if refusal:
        return refused(target, refusal, **known)

    hasher = current_hasher()
    template, selector = rules.pod_template(workload), spec.get("selector") or {}
    owner = rules.template_owner(workload)
    if owner is not None:  # its template lives in another workload (an Argo Rollout's workloadRef)
        referenced = api.get(owner.path(), what=owner.permission("get"))
        template = owner.rules.pod_template(referenced)
        selector = selector or (referenced.get("spec") or {}).get("selector") or {}
    sources = tuple(
        _source_state(api, target.namespace, kind, name, hasher) for kind, name in referenced_sources(template)
    )
    value = config_hash({(s.kind, s.name): s.content_hash for s in sources})
    pods = tuple(_pod_names(api, target, selector))
    known |= {"config_hash": value, "sources": sources, "pods": pods, "desired": rules.desired(workload)}
    if rules.restarted_with(workload, key) == value:
        return Plan(target=target, outcome=Plan.NOOP, message=noop_message(key, value, sources), **known)

    patch = rules.restart_patch(key, value, workload)
    dry = api.patch(
        target.path(), patch, what=target.permission("patch"), dry_run=True, content_type=rules.patch_content_type
    )
    dry_generation = (dry.get("metadata") or {}).get("generation")
    if dry_generation == generation:
        return Plan(target=target, outcome=Plan.NOOP, message=noop_message(key, value, sources), **known)
    dry_text = f"server-side dry run accepted the patch: generation {generation} would become {dry_generation}"
    warnings = [text for text in (gitops_warning(workload, key), restart_tool_warning(workload)) if text]
    if target.kind == WorkloadKind.DEPLOYMENT and deadline_exceeded(workload):
        warnings.append("Its previous rollout failed (progress deadline exceeded); this one may fail the same way.")
    if not pods:
        warnings.append("No pod runs right now: the patch changes the template only.")
    # What each pod picks up, and who changed it, from the stored verdicts and versions (drift.rollout.preview).
    previews, anyway = preview_restart(stored_workload(cluster, target.kind, target.namespace, target.name), list(pods))
    return Plan(
        target=target,
        outcome=Plan.READY,
        message=f"{target}: {len(pods)} pod(s) will be replaced ({strategy}).",
        dry_run=dry_text,
        warnings=tuple(warnings),
        patch=patch,
        previews=previews,
        restarted_anyway=anyway,
        **known,
    )


def busy(cluster: Cluster, target: Target, workload: dict[str, Any], claimed: int | None = None) -> str | None:
    """Why not now: one of our rollouts of this workload is still going (judged from the workload in hand,
    without recording anything), or the cluster shows a rollout under way (started by anyone)."""
    ours = Rollout.objects.of(cluster, target.kind, target.namespace, target.name).going()
    if claimed is not None:
        ours = ours.exclude(pk=claimed)
    for rollout in ours:
        going = rollout.status == Rollout.Status.PATCHING or (
            target.rules.progress(workload, rollout.generation or 0).state == Rollout.Status.IN_PROGRESS
        )
        if going:
            since = timezone.localtime(rollout.requested_at).strftime("%Y-%m-%d %H:%M:%S")
            return (
                f"A rollout of {target} is already in progress (requested by {rollout.requested_by} at {since}). "
                "Wait for it to finish."
            )
    reason = target.rules.busy(workload)
    return f"Not now: {reason}. Wait for it to finish, then try again." if reason else None


def _source_state(api: kube.KubeClient, namespace: str, kind: str, name: str, hasher: ValueHasher) -> SourceState:
    """The content hash of one ConfigMap or Secret as it is now. Secret values are hashed here and dropped."""
    plural = SourceKind(kind).plural
    try:
        item = api.get(kube.core_path(plural, namespace, name), what=f"get {plural} in {namespace}")
    except kube.NotFound:
        return SourceState(kind, name, None, "")
    except kube.InvalidName:
        return SourceState(kind, name, None, "")  # the API server would not have created it either
    key_hashes: dict[str, str] = {}
    binary: list[str] = []
    for key, raw, is_binary in raw_values(SourceKind(kind), item):
        key_hashes[key] = hasher.value(raw)
        if is_binary:
            binary.append(key)
    # The same recipe as the snapshot's SourceVersion.content_hash, so a page can name the version.
    content = ValueHasher.content(key_hashes, sorted(binary))
    return SourceState(kind, name, content, (item.get("metadata") or {}).get("resourceVersion", ""))


def _pod_names(api: kube.KubeClient, target: Target, label_selector: dict[str, Any]) -> list[str]:
    selector = selector_string(label_selector)
    if not selector:
        return []
    pods = api.list_paginated(
        kube.core_path("pods", target.namespace), what=f"list pods in {target.namespace}", label_selector=selector
    )
    return sorted(
        (pod.get("metadata") or {}).get("name", "")
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
    )
