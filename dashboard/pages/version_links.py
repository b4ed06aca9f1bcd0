"""Drift rows with the ids of the versions they name, shared by the workload, source and pod pages."""

from __future__ import annotations

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
    """A drift row with the ids of the versions it names, so a page can link to their diff."""

    row: DriftRow
    running_version_id: int | None
    current_version_id: int | None


def link_versions(cluster: Cluster, namespace: str, rows: Iterable[DriftRow]) -> list[LinkedRow]:
    rows = list(rows)
    names = {(row.source.kind, row.source.name) for row in rows}
    ids = _version_ids(cluster, namespace, names)
    return [
        LinkedRow(
            row,
            ids.get((row.source.kind, row.source.name, row.running_version or "")),
            ids.get((row.source.kind, row.source.name, row.current_version or "")),
        )
        for row in rows
    ]


def _version_ids(cluster: Cluster, namespace: str, names: set[tuple[str, str]]) -> dict[tuple[str, str, str], int]:
    if not names:
        return {}
    wanted = Q()
    for kind, name in names:
        wanted |= Q(source__kind=kind, source__name=name)
    versions = SourceVersion.objects.filter(wanted, source__cluster=cluster, source__namespace=namespace)
    return {
        (kind, name, resource_version): pk
        for pk, kind, name, resource_version in versions.values_list(
            "pk", "source__kind", "source__name", "resource_version"
        )
    }
