"""Joining stored audit events to stored versions (the rules are drift.authorship's): run when a version is
recorded (its events may have arrived first) and when a batch of events arrives (its versions may have been
recorded first). Each join reads the few events of one object around one second; a version's author is
written once it is known, with an audit entry whose actor is the Kubernetes user."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q

from drift import audit
from drift.authorship import Confidence, VersionFacts, WriteEvent, describe, join, window_around
from drift.kube import FIELD_MANAGER
from drift.models import AuditEvent, Cluster, KubeAuditEvent, SourceVersion


def as_write_event(row: KubeAuditEvent) -> WriteEvent:
    return WriteEvent(
        audit_id=row.audit_id, verb=row.verb, kind=row.kind, namespace=row.namespace, name=row.name, uid=row.uid,
        replaced_resource_version=row.replaced_resource_version, username=row.username, groups=tuple(row.groups),
        impersonated_user=row.impersonated_user, impersonated_groups=tuple(row.impersonated_groups),
        user_agent=row.user_agent, source_ips=tuple(row.source_ips), status_code=row.status_code,
        received_at=row.request_received_at, completed_at=row.completed_at, field_manager=row.field_manager,
        dry_run=row.dry_run, digest=row.digest,
    )  # fmt: skip


def attribute_versions(cluster: Cluster, versions: Iterable[SourceVersion]) -> int:
    """Join each version (with a managedFields time) to the stored events of its object; returns how many
    versions got an author."""
    versions = list(versions)
    attribute_own_writes(cluster, versions)
    if not KubeAuditEvent.objects.filter(cluster=cluster).exists():
        return 0  # a cluster that sends no audit events (the first cycle may record thousands of versions)
    return sum(1 for version in versions if version.pk and version.modified_at and _attribute(cluster, version.pk))


def attribute_own_writes(cluster: Cluster, versions: Iterable[SourceVersion]) -> int:
    """Driftwatch's own writes (a restore, sent with fieldManager=driftwatch) get their author from its own audit
    log: the person who asked, matched by the resourceVersion the update answered. No webhook needed. Returns how
    many versions got an author."""
    ours = [v for v in versions if v.pk and v.client == FIELD_MANAGER and not v.changed_by]
    if not ours:
        return 0
    condition = Q()
    for version in ours:
        source = version.source
        condition |= Q(
            namespace=source.namespace, object_kind=source.kind, object_name=source.name,
            detail__new_resource_version=version.resource_version,
        )  # fmt: skip
    asked = AuditEvent.objects.filter(condition, cluster_name=cluster.name, action=AuditEvent.Action.RESTORED)
    actor_of = {
        (event.namespace, event.object_kind, event.object_name, event.detail.get("new_resource_version")): event.actor
        for event in asked
    }
    found = 0
    for version in ours:
        key = (version.source.namespace, version.source.kind, version.source.name, version.resource_version)
        if key in actor_of:
            found += attribute_own_write(version.source_id, version.resource_version, actor_of[key])
    return found


def attribute_own_write(source_id: int, resource_version: str, actor: str) -> int:
    """The version a Driftwatch write produced (if recorded yet) gets the person who asked for it; called by the
    write after its audit entry, and by the recording after the version, so whichever comes second joins them."""
    return SourceVersion.objects.filter(
        source_id=source_id, resource_version=resource_version, client=FIELD_MANAGER, changed_by=""
    ).update(changed_by=actor, author_confidence=Confidence.CONFIRMED)


def attribute_events(cluster: Cluster, events: Iterable[KubeAuditEvent]) -> int:
    """After events arrived: join the versions they may have produced."""
    condition = Q()
    wrote = [event for event in events if 200 <= event.status_code < 300 and not event.dry_run]
    for event in wrote:
        low, high = window_around(event.completed_at)
        condition |= Q(
            source__kind=event.kind, source__namespace=event.namespace, source__name=event.name,
            modified_at__gte=low, modified_at__lte=high,
        )  # fmt: skip
    if not wrote:
        return 0
    candidates = SourceVersion.objects.filter(condition, source__cluster=cluster).exclude(
        author_confidence__in=[Confidence.CONFIRMED, Confidence.LIKELY]
    )
    return sum(1 for pk in candidates.values_list("pk", flat=True) if _attribute(cluster, pk))


def _attribute(cluster: Cluster, version_pk: int) -> bool:
    with transaction.atomic():
        version = SourceVersion.objects.select_for_update().select_related("source").get(pk=version_pk)
        if version.modified_at is None or version.author_confidence in (Confidence.CONFIRMED, Confidence.LIKELY):
            return False
        source = version.source
        previous = (
            SourceVersion.objects.filter(source=source, first_seen__lt=version.first_seen)
            .order_by("-first_seen", "-id")
            .values_list("resource_version", flat=True)
            .first()
        )
        low, high = window_around(version.modified_at)
        rows = list(
            KubeAuditEvent.objects.filter(
                cluster=cluster, kind=source.kind, namespace=source.namespace, name=source.name,
                completed_at__gte=low, completed_at__lte=high,
            ).filter(Q(version=None) | Q(version=version))
        )  # fmt: skip
        result = join(
            VersionFacts(version.modified_at, version.client, previous or "", source.uid), map(as_write_event, rows)
        )
        if result.chosen is None:
            return False
        by_digest = {row.digest: row for row in rows}  # auditIDs may repeat: the client chose them
        for candidate in result.candidates:
            KubeAuditEvent.objects.filter(pk=by_digest[candidate.digest].pk).update(
                version=version, join_confidence=result.confidence
            )
        author = result.chosen.author
        changed = version.changed_by != author or version.author_confidence != result.confidence
        SourceVersion.objects.filter(pk=version.pk).update(changed_by=author, author_confidence=result.confidence)
        if changed:
            chosen = by_digest[result.chosen.digest]
            audit.record(
                author,
                AuditEvent.Action.CONFIG_AUTHOR,
                f"{source.kind} {source.namespace}/{source.name} changed by "
                f"{describe(author, version.client or chosen.field_manager, result.confidence)}",
                cluster_name=cluster.name,
                namespace=source.namespace,
                object_kind=source.kind,
                object_name=source.name,
                detail={
                    "resource_version": version.resource_version,
                    "client": version.client or chosen.field_manager,
                    "user_agent": chosen.user_agent,
                    "user": chosen.username,
                    "impersonated_user": chosen.impersonated_user,
                    "groups": chosen.impersonated_groups or chosen.groups,
                    "source_ips": chosen.source_ips,
                    "verb": chosen.verb,
                    "audit_id": chosen.audit_id,
                    "confidence": result.confidence,
                    "candidates": len(result.candidates),
                },
            )
        return True
