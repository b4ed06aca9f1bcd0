"""The ConfigMap / Secret page: the version timeline (without the versions' data), the two versions being
compared (with theirs), and the consumers."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass

from dashboard.pages.version_links import LinkedRow, link_versions
from drift import verdicts
from drift.diffs import changed_keys
from drift.models import Cluster, Source, SourceVersion, Workload
from drift.rollout.kinds import ROLLABLE_KINDS
from drift.vocabulary import RESTART_VERDICTS


@dataclass
class VersionEntry:
    version: SourceVersion
    number: int
    uid: str
    recreated: bool  # the first version of a lineage that replaced an earlier one (delete and create)
    deleted_at: dt.datetime | None  # set on the last version of a deleted lineage
    changes: dict[str, list[str]]
    current: bool
    previous_id: int | None  # the version before it, for a "diff with previous" link


# Kustomize's configMapGenerator and secretGenerator name each content NAME-HASH: ten characters of a hex digest
# with 0, 1, 3, a and e swapped for g, h, k, m and t (so the suffix never spells a word).
CONTENT_HASH_SUFFIX = re.compile(r"-[245-9bcdfghkmt]{10}$")


@dataclass(frozen=True)
class InPlaceEdit:
    """An edit of a ConfigMap or Secret whose name carries a content hash: it is meant to be replaced by a new
    object under a new name, so pods that reference the old name never see a change they did not roll out for."""

    number: int  # the version the edit made
    at: dt.datetime


def in_place_edits(name: str, history: list[VersionEntry]) -> list[InPlaceEdit]:
    """The versions that changed a content-addressed object in place (not its first, nor a recreation)."""
    if not CONTENT_HASH_SUFFIX.search(name):
        return []
    return [
        InPlaceEdit(entry.number, entry.version.first_seen)
        for entry in history
        if entry.previous_id is not None and not entry.recreated
    ]


def source_history(cluster: Cluster, namespace: str, kind: str, name: str) -> list[VersionEntry]:
    """Every version of every lineage of one ConfigMap or Secret, oldest first, without their data: a long
    history of a large ConfigMap must not be read to draw a timeline (`compared` loads the two shown)."""
    lineages = list(
        Source.objects.filter(cluster=cluster, namespace=namespace, kind=kind, name=name).order_by("first_seen", "id")
    )
    by_lineage: dict[int, list[SourceVersion]] = defaultdict(list)
    for version in SourceVersion.objects.filter(source__in=lineages).defer("data").order_by("first_seen", "id"):
        by_lineage[version.source_id].append(version)
    entries: list[VersionEntry] = []
    previous: SourceVersion | None = None
    for index, lineage in enumerate(lineages):
        versions = by_lineage[lineage.pk]
        for position, version in enumerate(versions):
            last = position == len(versions) - 1
            entries.append(
                VersionEntry(
                    version=version,
                    number=len(entries) + 1,
                    uid=lineage.uid,
                    recreated=index > 0 and position == 0,
                    deleted_at=lineage.deleted_at if last else None,
                    changes=changed_keys(previous.key_hashes, version.key_hashes) if previous else {},
                    current=False,
                    previous_id=previous.pk if previous else None,
                )
            )
            previous = version
    if entries and lineages[-1].deleted_at is None:
        entries[-1].current = True
    return entries


def source_stamp(cluster: Cluster, history: list[VersionEntry]) -> str:
    """A version of what the timeline and the consumers show: the cluster's stored verdicts (drift.verdicts.stamp)
    and this source's latest version and deletion. "" when verdicts are judged at read time."""
    stamp = verdicts.stamp([cluster])
    if not stamp or not history:
        return ""
    last = history[-1]
    return f"{stamp}.{last.version.pk}.{last.deleted_at.timestamp() if last.deleted_at else 0}"


def compared(old: VersionEntry, new: VersionEntry) -> tuple[dict[str, str], dict[str, str]]:
    """The data of the two versions being compared, and of no other (one query)."""
    loaded = SourceVersion.objects.only("data").in_bulk([old.version.pk, new.version.pk])
    return loaded[old.version.pk].data, loaded[new.version.pk].data


def source_consumers(
    cluster: Cluster, namespace: str, kind: str, name: str, now: dt.datetime | None = None
) -> list[LinkedRow]:
    rows = [
        row for row in verdicts.rows(cluster, namespace, now=now) if row.source.kind == kind and row.source.name == name
    ]
    return link_versions(cluster, namespace, rows)


def stale_consumers(consumers: list[LinkedRow]) -> list[Workload]:
    """The rollable workloads a restart would bring up to date on this source (a stale or new-on-disk-only row):
    what "Roll out the stale consumers" offers, looked up by id so the rollout authorises each on its own row."""
    ids = {judged.row.workload_id for judged in consumers if judged.row.verdict in RESTART_VERDICTS}
    found = Workload.objects.filter(pk__in=ids, kind__in=ROLLABLE_KINDS).select_related("cluster")
    return list(found.order_by("namespace", "kind", "name"))
