"""Every version of one ConfigMap or Secret with who wrote it: what `manage.py history` prints and what the
source page's timeline and the pod page ("started with version #3, written by alice via kubectl-patch") say."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drift.authorship import describe
from drift.diffs import changed_keys
from drift.models import Cluster, Source, SourceVersion


@dataclass(frozen=True)
class HistoryEntry:
    number: int  # 1 for the oldest version ever seen, across delete-and-recreate
    version: SourceVersion
    changed_at: datetime  # when the content appeared (managedFields when it can be trusted, else first seen)
    changed_keys: dict[str, list[str]]

    @property
    def timed_by_api(self) -> bool:
        """Its time is the API server's (managedFields or creation), not only when Driftwatch first saw it."""
        return self.version.modified_at is not None and self.changed_at == self.version.modified_at

    @property
    def author(self) -> str:
        return describe(self.version.changed_by, self.version.client, self.version.author_confidence)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.number,
            "resource_version": self.version.resource_version,
            "first_seen": self.version.first_seen.isoformat(),
            "changed_at": self.changed_at.isoformat(),
            "changed_by": self.version.changed_by or None,
            "client": self.version.client or None,
            "changed_keys": self.changed_keys,
        }


def history(cluster: Cluster, namespace: str, kind: str, name: str) -> list[HistoryEntry]:
    """Oldest first, without the versions' data (a long history of a large ConfigMap is not read)."""
    lineages = Source.objects.filter(cluster=cluster, namespace=namespace, kind=kind, name=name)
    versions = SourceVersion.objects.filter(source__in=lineages).defer("data").order_by("first_seen", "id")
    entries: list[HistoryEntry] = []
    previous: SourceVersion | None = None
    for number, version in enumerate(versions, start=1):
        changed_at = version.appeared_at(previous.first_seen if previous else None)
        keys = changed_keys(previous.key_hashes if previous else {}, version.key_hashes)
        entries.append(HistoryEntry(number, version, changed_at, keys))
        previous = version
    return entries


def version_number(version: SourceVersion) -> int:
    """The number a version has in its source's history (as `history` counts, across lineages)."""
    source = version.source
    return SourceVersion.objects.filter(
        source__cluster_id=source.cluster_id, source__namespace=source.namespace, source__kind=source.kind,
        source__name=source.name, first_seen__lte=version.first_seen,
    ).exclude(first_seen=version.first_seen, id__gt=version.pk).count()  # fmt: skip


@dataclass(frozen=True)
class StartedWith:
    """The version a container started with (``entry``), or why that is not known (``unknown``), and the later
    versions that wrote the same content again (``repeats``: what a match on content alone would have named)."""

    entry: HistoryEntry | None
    unknown: str = ""
    repeats: list[HistoryEntry] = field(default_factory=list)


def started_with(entries: Sequence[HistoryEntry], started_at: datetime) -> StartedWith:
    """The version current when the container started: the last one written at or before its start, by the same
    times and the same comparison the rules use (drift.verdicts.rules, ``_states_at``), so the pod page and its
    verdicts agree. Pure: no query, no clock.

    Before the oldest version nothing is known: when its time is only when Driftwatch first saw it, the content may
    have been there long before; when it is the API server's, an earlier content was never seen. Either way it is
    "not known", never a guess."""
    current: HistoryEntry | None = None
    for entry in entries:
        if entry.changed_at > started_at:
            break
        current = entry
    if current is None:
        if not entries:
            return StartedWith(None, "no version of it is known")
        first = entries[0]
        if first.timed_by_api:
            return StartedWith(
                None, f"#{first.number} was written after the container started; what came before it was never seen"
            )
        return StartedWith(
            None,
            f"Driftwatch first saw #{first.number} after the container started; what it held before is not known",
        )
    repeats = [
        entry
        for entry in entries
        if entry.number > current.number and entry.version.content_hash == current.version.content_hash
    ]
    return StartedWith(current, "", repeats)
