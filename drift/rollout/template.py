"""The pod template side of a rollout, pure: which sources a template reads, the one hash of their contents
that the annotation carries, the patch itself, and the warnings a GitOps-managed workload deserves."""

from __future__ import annotations

import hashlib
from typing import Any

from drift import podspec

# What Argo CD and Flux do with a field Driftwatch writes (under its field manager, drift.kube.FIELD_MANAGER):
# - Argo CD: https://argo-cd.readthedocs.io/en/stable/user-guide/diffing/ (ignoreDifferences, with
#   managedFieldsManagers: "fields mutated by those managers take precedence over the desired state ... and
#   won't be displayed in diffs") and https://argo-cd.readthedocs.io/en/stable/user-guide/sync-options/
#   (RespectIgnoreDifferences=true: a sync leaves ignored fields as they are live).
# - Flux: https://fluxcd.io/flux/faq/#why-are-kubectl-edits-rolled-back-by-flux — the kustomize-controller
#   applies Git with server-side apply: it puts back the fields it manages and removes edits made under kubectl's
#   own field managers; a field that Git does not set and another manager owns is left alone.


def gitops_warning(workload: dict[str, Any], annotation_key: str) -> str | None:
    """A warning when Argo CD or Flux manages the workload, saying what it will do with our annotation and how to
    have it leave Driftwatch's field alone."""
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
        group = str(workload.get("apiVersion") or "apps/v1").rpartition("/")[0] or "apps"
        return (
            f"Managed by Argo CD (application {application}): the {annotation_key} annotation is not in its "
            f"manifests. Where the manifests set the pod template's annotations, Argo CD shows this as drift "
            f"(OutOfSync) and its next sync (or self-heal) writes Git's template back, which restarts the pods "
            f"once more. To let Driftwatch's change stand, add to application {application}: ignoreDifferences: "
            f"[{{group: {group}, kind: {workload.get('kind') or 'Deployment'}, managedFieldsManagers: [driftwatch]}}] "
            "and the sync option RespectIgnoreDifferences=true."
        )
    for label, what in (
        ("kustomize.toolkit.fluxcd.io/name", "Kustomization"),
        ("helm.toolkit.fluxcd.io/name", "HelmRelease"),
    ):
        if label in labels:
            owner_namespace = labels.get(label.replace("/name", "/namespace"), "")
            owner = f"{owner_namespace}/{labels[label]}" if owner_namespace else labels[label]
            return (
                f"Managed by Flux ({what} {owner}): the {annotation_key} annotation is not in its manifests. Flux "
                "applies Git with server-side apply: it leaves a field Git does not set and that Driftwatch's field "
                "manager (driftwatch) owns, so the annotation stays; if Git sets the same annotation, its next "
                "reconciliation writes Git's value back and the pods restart once more. Keep that annotation out "
                "of the manifests (or set it there)."
            )
    return None


def restart_tool_warning(workload: dict[str, Any]) -> str | None:
    """A warning when the owner has a restart tool (Reloader, Wave, Helm checksum) roll the workload on config
    changes: a manual rollout adds one more restart to the one it does (or should have done)."""
    metadata = workload.get("metadata") or {}
    template = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    tool = podspec.restart_tool(metadata.get("annotations") or {}) or podspec.restart_tool(
        template.get("annotations") or {}
    )
    if not tool:
        return None
    return (
        f"Its owner has {tool} restart it when its config changes: a rollout from here adds one more restart to "
        "the one that tool does (or should have done; if it did not, look at the tool)."
    )


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
