"""The pod template side of a rollout, pure: which sources a template reads, the one hash of their contents
that the annotation carries, the patch itself, and the warnings a GitOps-managed workload deserves."""

from __future__ import annotations

import hashlib
from typing import Any

from drift import podspec


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
