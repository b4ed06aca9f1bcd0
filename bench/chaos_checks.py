"""What `make chaos` (bench/chaos.py) checks after each fault: plain comparisons, and the queries that feed them.

Kept apart from the harness so that tests/test_chaos_checks.py runs the same code on rows written to fail it:
the versions the API server answered the edit stream with against the versions Driftwatch stored, a version
stored twice, an audit entry written twice, a rollout sent twice (the Deployment's generation moved more often
than Driftwatch recorded patches) or lost (recorded as applied, never seen by the Deployment)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from django.db.models import Count
from django.db.models.fields.json import KeyTextTransform

from drift.models import AuditEvent, Rollout, SourceVersion
from drift.rollout.record import ENDING_ACTIONS
from drift.vocabulary import SourceKind

# (ConfigMap name, resourceVersion)
Version = tuple[str, str]


def stored_versions(cluster: str, namespace: str) -> list[Version]:
    """Every ConfigMap version Driftwatch stored in the namespace, one entry per row (duplicates kept)."""
    rows = SourceVersion.objects.filter(
        source__cluster__name=cluster, source__namespace=namespace, source__kind=SourceKind.CONFIG_MAP
    ).values_list("source__name", "resource_version")
    return [(name, version) for name, version in rows]


def missing_versions(answered: Iterable[Version], stored: Iterable[Version]) -> list[Version]:
    """Versions the API server answered a write with that Driftwatch never stored."""
    have = set(stored)
    return sorted({version for version in answered if version not in have})


def duplicate_versions(stored: Iterable[Version]) -> list[Version]:
    """A resourceVersion of one ConfigMap stored more than once."""
    return sorted(version for version, count in Counter(stored).items() if count > 1)


def duplicate_audit_entries(cluster: str) -> list[str]:
    """Audit entries that exist more than once: a config change per object and resourceVersion, a rollout's
    request per rollout, and a rollout's end (whatever the end) per rollout."""
    found: list[str] = []
    config = (
        AuditEvent.objects.filter(
            cluster_name=cluster, action__in=[AuditEvent.Action.CONFIG_CHANGED, AuditEvent.Action.CONFIG_CREATED]
        )
        .annotate(version=KeyTextTransform("resource_version", "detail"))
        .values("action", "namespace", "object_kind", "object_name", "version")
        .order_by()
        .annotate(count=Count("id"))
        .filter(count__gt=1)
    )
    found += [
        f"{row['action']} {row['object_kind']} {row['namespace']}/{row['object_name']} rv={row['version']} "
        f"x{row['count']}"
        for row in config
    ]
    for label, actions in (("request", [AuditEvent.Action.ROLLOUT_REQUESTED]), ("end", sorted(ENDING_ACTIONS))):
        rollouts = (
            AuditEvent.objects.filter(cluster_name=cluster, action__in=actions)
            .annotate(rollout=KeyTextTransform("rollout", "detail"))
            .filter(rollout__isnull=False)
            .values("rollout")
            .order_by()
            .annotate(count=Count("id"))
            .filter(count__gt=1)
        )
        found += [f"rollout {row['rollout']}: {label} recorded x{row['count']}" for row in rollouts]
    return found


def applied_rollouts(cluster: str, namespace: str) -> dict[str, int]:
    """Per Deployment name, how many rollouts Driftwatch recorded as patched (the patch's generation known)."""
    rows = (
        Rollout.objects.filter(cluster__name=cluster, namespace=namespace, kind="Deployment")
        .exclude(generation=None)
        .values("name")
        .order_by()
        .annotate(count=Count("id"))
    )
    return {row["name"]: row["count"] for row in rows}


def rollout_mismatches(applied: Mapping[str, int], generation_bumps: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """(sent twice, lost): each rollout is one template change, so each Deployment's generation must have moved
    exactly as often as Driftwatch recorded a patch of it. More moves: a patch sent twice; fewer: a rollout
    recorded as applied that the Deployment never received."""
    twice, lost = [], []
    for name in sorted(set(applied) | set(generation_bumps)):
        recorded, bumped = applied.get(name, 0), generation_bumps.get(name, 0)
        if bumped > recorded:
            twice.append(f"deployment/{name}: generation moved {bumped}x, {recorded} rollout(s) recorded")
        elif bumped < recorded:
            lost.append(f"deployment/{name}: {recorded} rollout(s) recorded, generation moved {bumped}x")
    return twice, lost


def unfinished_rollouts(batch: str) -> list[str]:
    """Rollouts of a batch still queued, patching or in progress: lost when the batch should have ended."""
    return [str(rollout) for rollout in Rollout.objects.filter(batch=batch, status__in=Rollout.ACTIVE).order_by("id")]
