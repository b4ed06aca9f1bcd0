"""Drift rows with the ids and numbers (#N) of the versions they name, shared by the workload, source and pod pages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q

from drift.models import Cluster, SourceVersion
from drift.verdicts import DriftRow
from drift.vocabulary import Mode, SourceKind

# Every pod mounts this ConfigMap through its service-account token volume; pages fold its rows away.
SERVICE_ACCOUNT_CA = "kube-root-ca.crt"


def is_service_account_ca(row: DriftRow) -> bool:
    return (
        row.source.kind == SourceKind.CONFIG_MAP
        and row.source.name == SERVICE_ACCOUNT_CA
        and row.mode == Mode.PROJECTED
    )


@dataclass(frozen=True)
class LinkedRow:
    """A drift row with the ids of the versions it names, so a page can link to their diff, and their numbers in
    the source's history, the name pages give a version (#N, as drift.history counts)."""

    row: DriftRow
    running_version_id: int | None
    current_version_id: int | None
    running_number: int | None = None
    current_number: int | None = None


def link_versions(cluster: Cluster, namespace: str, rows: Iterable[DriftRow]) -> list[LinkedRow]:
    rows = list(rows)
    names = {(row.source.kind, row.source.name) for row in rows}
    known = _versions(cluster, namespace, names)
    linked = []
    for row in rows:
        running = known.get((row.source.kind, row.source.name, row.running_version or ""), (None, None))
        current = known.get((row.source.kind, row.source.name, row.current_version or ""), (None, None))
        linked.append(LinkedRow(row, running[0], current[0], running[1], current[1]))
    return linked


def _versions(
    cluster: Cluster, namespace: str, names: set[tuple[str, str]]
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(kind, name, resourceVersion) -> (id, number): numbered oldest first across lineages, as history() does."""
    if not names:
        return {}
    wanted = Q()
    for kind, name in names:
        wanted |= Q(source__kind=kind, source__name=name)
    versions = SourceVersion.objects.filter(wanted, source__cluster=cluster, source__namespace=namespace)
    counted: Counter[tuple[str, str]] = Counter()
    found: dict[tuple[str, str, str], tuple[int, int]] = {}
    for pk, kind, name, resource_version in versions.order_by("first_seen", "id").values_list(
        "pk", "source__kind", "source__name", "resource_version"
    ):
        counted[(kind, name)] += 1
        found[(kind, name, resource_version)] = (pk, counted[(kind, name)])
    return found
