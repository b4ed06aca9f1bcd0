"""Step 2 of a cycle: compare the listing with what Postgres knows and write only what changed: new versions
of ConfigMaps and Secrets (with audit entries), new pods and container runs with what they consume, ends
and deletions. Nothing is written when nothing changed, except the run record."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from drift import audit, metrics, podspec
from drift.attribution import attribute_versions
from drift.authorship import shown_client
from drift.models import (
    AuditEvent,
    Cluster,
    Consumption,
    ContainerInstance,
    Pod,
    SnapshotRun,
    Source,
    SourceVersion,
    Workload,
)
from drift.snapshot import rekeying
from drift.snapshot.listing import ListedSource, Listing
from drift.vocabulary import SourceKind, WorkloadKind

ACTOR = "driftwatch"
RECORDED_BY_SNAPSHOT = "snapshot"
RECORDED_BY_WATCH = "watch"
# pg_advisory_xact_lock(namespace, cluster): the writers of a cluster's sources (drift.rollout has its own).
_SOURCES_LOCK_NAMESPACE = 0x0D72


@dataclass
class Recorded:
    rows: int = 0
    rekeyed: int = 0


def record(
    cluster: Cluster, listing: Listing, now: datetime, hash_key_id: str, previous_key_ids: tuple[str, ...] = ()
) -> Recorded:
    recorded = Recorded()
    first_sighting = not cluster.runs.filter(
        status__in=[SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL]
    ).exists()
    with transaction.atomic():
        lock_sources(cluster)
        if previous_key_ids:
            recorded.rekeyed = rekeying.rekey(cluster, listing, hash_key_id, previous_key_ids)
        created = _record_sources(cluster, listing, now, first_sighting, hash_key_id, recorded, RECORDED_BY_SNAPSHOT)
        _record_pods(cluster, listing, now, recorded)
    attribute_versions(cluster, created)
    return recorded


def record_sources(cluster: Cluster, listing: Listing, now: datetime, hash_key_id: str) -> Recorded:
    """The watcher's relist: the same comparison as a snapshot's, for ConfigMaps and Secrets only."""
    recorded = Recorded()
    with transaction.atomic():
        lock_sources(cluster)
        # Before anything was recorded of the cluster, what exists is not "created": no audit entry per source.
        first_sighting = not Source.objects.filter(cluster=cluster).exists()
        created = _record_sources(cluster, listing, now, first_sighting, hash_key_id, recorded, RECORDED_BY_WATCH)
    attribute_versions(cluster, created)
    return recorded


def record_source_event(
    cluster: Cluster, listed: ListedSource, now: datetime, hash_key_id: str, deleted: bool = False
) -> Recorded:
    """One watch event of a ConfigMap or Secret, recorded as a snapshot would record it: a new content is a
    new version (with its audit entry), a deletion ends the lineage. Nothing is written when nothing changed."""
    recorded = Recorded()
    with transaction.atomic():
        lock_sources(cluster)
        source = Source.objects.filter(cluster=cluster, uid=listed.uid).first()
        if deleted:
            if source is not None and source.deleted_at is None:
                Source.objects.filter(pk=source.pk).update(deleted_at=now)
                recorded.rows += 1
                audit.record_many([_deleted_audit(cluster, source)])
            return recorded
        if source is not None and source.deleted_at is not None:
            return recorded  # an event older than the deletion we already know of
        latest = (
            SourceVersion.objects.filter(source=source)
            .only("id", "source_id", "content_hash", "key_hashes", "first_seen", "resource_version", "hash_key_id")
            .latest_per_source()
            .first()
            if source is not None
            else None
        )
        if source is not None and latest is not None and _older(listed.resource_version, latest.resource_version):
            created = _record_past_version(cluster, listed, source, hash_key_id, recorded)
        else:
            created = _compare_source(
                cluster, listed, source, latest, now, False, hash_key_id, recorded, RECORDED_BY_WATCH
            )
    attribute_versions(cluster, created)
    return recorded


def _record_past_version(
    cluster: Cluster, listed: ListedSource, source: Source, hash_key_id: str, recorded: Recorded
) -> list[SourceVersion]:
    """A watch event older than the latest stored version: a restarted watcher replaying what changed while it
    was away, after a snapshot had recorded a later content meanwhile. The version takes its place in the
    timeline, between the stored versions before and after it, unless it is known already: its resourceVersion
    is stored, or its content is that of its neighbour before (no change) or after (the same content, stored by
    a listing under a later resourceVersion, e.g. after a label edit)."""
    stored = list(
        SourceVersion.objects.filter(source=source, resource_version__regex=r"^[0-9]+$").only(
            "id", "content_hash", "key_hashes", "first_seen", "resource_version"
        )
    )
    if not listed.resource_version.isdigit() or any(v.resource_version == listed.resource_version for v in stored):
        return []
    number = int(listed.resource_version)
    before = max((v for v in stored if int(v.resource_version) < number), key=_number, default=None)
    after = min((v for v in stored if int(v.resource_version) > number), key=_number, default=None)
    if before is None or after is None or listed.content_hash in (before.content_hash, after.content_hash):
        return []
    # When the API server says the data changed (managedFields) if that falls between its neighbours, else halfway.
    first_seen = before.first_seen + (after.first_seen - before.first_seen) / 2
    if listed.modified_at is not None and before.first_seen < listed.modified_at < after.first_seen:
        first_seen = listed.modified_at
    version = SourceVersion.objects.create(
        source=source, content_hash=listed.content_hash, resource_version=listed.resource_version,
        first_seen=first_seen, modified_at=listed.modified_at, key_hashes=listed.key_hashes,
        data=listed.data, binary_keys=listed.binary_keys, size_bytes=listed.size_bytes,
        hash_key_id=hash_key_id, client=listed.client[:128], recorded_by=RECORDED_BY_WATCH,
    )  # fmt: skip
    recorded.rows += 1
    changes = _key_changes(before.key_hashes, listed.key_hashes)
    entry = _config_audit(cluster, listed, AuditEvent.Action.CONFIG_CHANGED, "changed", changes)
    entry.message += " (recorded late: the watcher caught up after a later version was seen)"
    _save_audits(cluster, [entry])
    return [version]


def _number(version: SourceVersion) -> int:
    return int(version.resource_version)


def record_pods(cluster: Cluster, listing: Listing, now: datetime) -> Recorded:
    """The pod watcher's relist: the pods and container runs of a full listing, compared as a snapshot does."""
    recorded = Recorded()
    with transaction.atomic():
        lock_sources(cluster)
        _record_pods(cluster, listing, now, recorded)
    return recorded


@dataclass
class RecordedPod:
    """What one pod event wrote, and what it means for what is judged and probed."""

    rows: int = 0
    workload_id: int | None = None
    new_containers: bool = False
    pod_id: int | None = None


def record_pod_event(
    cluster: Cluster, item: dict[str, Any], listing: Listing, now: datetime, deleted: bool = False
) -> RecordedPod:
    """One watch event of a pod, recorded as a snapshot would record the pod: created with its workload when new,
    new container runs with what they consume, runs that stopped or are gone; a deletion ends the pod and its
    runs. `listing` carries what a pod alone does not say (its owners, simulated nodes, ignored ConfigMaps).
    Nothing is written when nothing changed."""
    metadata = item.get("metadata") or {}
    uid = metadata.get("uid", "")
    recorded = Recorded()
    with transaction.atomic():
        lock_sources(cluster)
        stored = Pod.objects.filter(cluster=cluster, uid=uid).values_list("pk", "workload_id", "deleted_at").first()
        if stored is not None and stored[2] is not None:
            return RecordedPod()  # an event older than the deletion we already know of
        if deleted:
            if stored is None:
                return RecordedPod()
            # The deleted pod's last status still says how its containers ended (a Job's pod, an eviction).
            known = _known_pods(cluster, uid=uid)
            changes = ContainerChanges()
            pod = known.pods.get(uid)
            if pod is not None:
                _compare_containers(pod, item, listing, known.instances.get(pod.pk, {}), now, changes)
            changes = ContainerChanges(
                ended=list(
                    ContainerInstance.objects.filter(pod_id=stored[0], ended_at=None).values_list("pk", flat=True)
                ),
                statuses=changes.statuses,
            )
            recorded.rows += Pod.objects.filter(pk=stored[0]).update(deleted_at=now)
            _write_container_changes(changes, now, recorded)
            return RecordedPod(recorded.rows, stored[1])
        known = _known_pods(cluster, uid=uid, workload=_workload_key(metadata, listing))
        pod = _record_pod(cluster, item, listing, known, now, recorded)
        changes = ContainerChanges()
        _compare_containers(pod, item, listing, known.instances.get(pod.pk, {}), now, changes)
        # A run that ended does not come back: an event may show a container as it was before (a pending status
        # again while the pod is deleted), which must not record that run a second time.
        ended = set(
            ContainerInstance.objects.filter(pod_id=pod.pk).exclude(ended_at=None).values_list("name", "container_id")
        )
        changes.new = [(run, specs) for run, specs in changes.new if (run.name, run.container_id) not in ended]
        new_containers = bool(changes.new)
        _write_container_changes(changes, now, recorded)
        workload_id = Pod.objects.filter(pk=pod.pk).values_list("workload_id", flat=True).first()
    return RecordedPod(recorded.rows, workload_id, new_containers, pod.pk)


def _workload_key(metadata: dict[str, Any], listing: Listing) -> tuple[str, str, str]:
    kind, name = podspec.top_owner(metadata, listing.owners)
    return kind, metadata.get("namespace", ""), name


def lock_sources(cluster: Cluster) -> None:
    """One writer of a cluster's sources at a time (the snapshot and the watcher), until the transaction ends:
    both compare with the latest stored version, and two at once would record one content twice."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_SOURCES_LOCK_NAMESPACE, cluster.pk])


def _older(listed: str, stored: str) -> bool:
    """Whether a listed resourceVersion predates the stored one: a listing read before a change the watcher
    recorded meanwhile must not record the old content again. resourceVersions are opaque to clients; they are
    compared only when both are plain numbers (etcd revisions), as every API server we know gives them."""
    return listed.isdigit() and stored.isdigit() and int(listed) < int(stored)


# -- sources ----------------------------------------------------------------------------------------------


def _record_sources(
    cluster: Cluster,
    listing: Listing,
    now: datetime,
    first_sighting: bool,
    hash_key_id: str,
    recorded: Recorded,
    recorded_by: str,
) -> list[SourceVersion]:
    live = {
        source.uid: source
        for source in Source.objects.filter(cluster=cluster, deleted_at=None)
        # An ignored ConfigMap recorded before it was ignored is left alone: neither seen nor gone.
        if not listing.ignores(source.kind, source.namespace, source.name)
    }
    latest = {
        version.source_id: version
        for version in SourceVersion.objects.filter(source__in=live.values())
        .only("id", "source_id", "content_hash", "key_hashes", "first_seen", "resource_version", "hash_key_id")
        .latest_per_source()
    }
    ended = set(
        Source.objects.filter(cluster=cluster, uid__in=[listed.uid for listed in listing.sources])
        .exclude(deleted_at=None)
        .values_list("uid", flat=True)
    )
    new_versions: list[SourceVersion] = []
    audits: list[AuditEvent] = []
    seen: set[str] = set()
    for listed in listing.sources:
        seen.add(listed.uid)
        if listed.uid in ended:
            continue  # deleted (by the watcher) after this listing was read
        source = live.get(listed.uid)
        created = _compare_source(
            cluster, listed, source, latest.get(source.pk) if source else None, now, first_sighting, hash_key_id,
            recorded, recorded_by, write=False, audits=audits,
        )  # fmt: skip
        new_versions.extend(created)
    SourceVersion.objects.bulk_create(new_versions)
    recorded.rows += len(new_versions)
    gone = [
        source
        for uid, source in live.items()
        if uid not in seen
        and listing.fully_read(SourceKind(source.kind).plural, source.namespace)
        # recorded (by the watcher) after this listing was read: not gone, just newer than the listing
        and (listing.started_at is None or source.first_seen < listing.started_at)
    ]
    if gone:
        Source.objects.filter(pk__in=[source.pk for source in gone]).update(deleted_at=now)
        recorded.rows += len(gone)
        audits.extend(_deleted_audit(cluster, source) for source in gone)
    _save_audits(cluster, audits)
    return new_versions


def _compare_source(
    cluster: Cluster,
    listed: ListedSource,
    source: Source | None,
    previous: SourceVersion | None,
    now: datetime,
    first_sighting: bool,
    hash_key_id: str,
    recorded: Recorded,
    recorded_by: str,
    write: bool = True,
    audits: list[AuditEvent] | None = None,
) -> list[SourceVersion]:
    """The new version of one listed source, if its content differs from the latest stored one (created now
    when `write`, else returned for a bulk insert by the caller), and its audit entry."""
    pending: list[AuditEvent] = [] if audits is None else audits
    if source is None:
        source = Source.objects.create(
            cluster=cluster, kind=listed.kind, namespace=listed.namespace, name=listed.name,
            uid=listed.uid, immutable=listed.immutable, first_seen=now,
        )  # fmt: skip
        recorded.rows += 1
        if not first_sighting:
            pending.append(_config_audit(cluster, listed, AuditEvent.Action.CONFIG_CREATED, "created", {}))
    elif previous is not None:
        if previous.content_hash == listed.content_hash:
            return []
        if previous.hash_key_id and listed.previous_content_hashes.get(previous.hash_key_id) == previous.content_hash:
            return []  # the same content under a previous hash key: the snapshot re-keys it
        if _older(listed.resource_version, previous.resource_version):
            return []
    # A listing's time is when it began reading; the watcher may have recorded an older version after that. The
    # timeline is ordered by time, so a newer version never goes before the one it follows.
    first_seen = now if previous is None else max(now, previous.first_seen + timedelta(microseconds=1))
    version = SourceVersion(
        source=source, content_hash=listed.content_hash, resource_version=listed.resource_version,
        first_seen=first_seen, modified_at=listed.modified_at, key_hashes=listed.key_hashes,
        data=listed.data, binary_keys=listed.binary_keys, size_bytes=listed.size_bytes,
        hash_key_id=hash_key_id, client=listed.client[:128], recorded_by=recorded_by,
    )  # fmt: skip
    if previous is not None:
        changes = _key_changes(previous.key_hashes, listed.key_hashes)
        pending.append(_config_audit(cluster, listed, AuditEvent.Action.CONFIG_CHANGED, "changed", changes))
    if write:
        version.save()
        recorded.rows += 1
        _save_audits(cluster, pending)
    return [version]


def _deleted_audit(cluster: Cluster, source: Source) -> AuditEvent:
    return audit.entry(
        ACTOR, AuditEvent.Action.CONFIG_DELETED, f"{source.kind} {source.namespace}/{source.name} deleted",
        cluster_name=cluster.name, namespace=source.namespace, object_kind=source.kind, object_name=source.name,
    )  # fmt: skip


def _save_audits(cluster: Cluster, audits: list[AuditEvent]) -> None:
    """Writes the audit entries; the config-change counter moves once they are committed (a rolled-back
    recording counted nothing)."""
    audit.record_many(audits)
    changed = [audit for audit in audits if audit.action == AuditEvent.Action.CONFIG_CHANGED]
    if changed:
        transaction.on_commit(lambda: _count_changes(cluster.name, changed))


def _count_changes(cluster: str, changed: list[AuditEvent]) -> None:
    for entry in changed:
        metrics.CONFIG_CHANGES.labels(cluster, entry.namespace, entry.object_kind).inc()


def _key_changes(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """Key names only, never values: what an audit entry may say about a change."""
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(key for key in set(before) & set(after) if before[key] != after[key]),
    }


def _client_named(manager: str) -> str:
    shown = shown_client(manager)
    return f"client {shown}" if shown == manager else shown


def _config_audit(
    cluster: Cluster, listed: ListedSource, action: str, verb: str, changes: dict[str, list[str]]
) -> AuditEvent:
    summary = "; ".join(f"{what}: {', '.join(keys)}" for what, keys in changes.items() if keys)
    client = f" by {_client_named(listed.client)}" if listed.client else ""
    return audit.entry(
        ACTOR, action,
        f"{listed.kind} {listed.namespace}/{listed.name} {verb}{client}" + (f" ({summary})" if summary else ""),
        cluster_name=cluster.name, namespace=listed.namespace, object_kind=listed.kind, object_name=listed.name,
        detail={"resource_version": listed.resource_version, "client": listed.client, **changes},
    )  # fmt: skip


# -- pods and container runs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownPod:
    """What an idle cycle needs of a recorded pod: plain values, no model instances (thousands of pods)."""

    pk: int
    namespace: str
    started_at: datetime | None
    first_seen: datetime | None = None
    terminating: bool = False


@dataclass(frozen=True)
class RunStatus:
    """What a container run's status says beyond running or not (stored as ContainerInstance's fields of the
    same names): how it ended, its container's restart count and waiting reason."""

    termination_reason: str = ""
    exit_code: int | None = None
    finished_at: datetime | None = None
    restart_count: int = 0
    waiting_reason: str = ""

    def ended(self, termination: podspec.Termination) -> RunStatus:
        return RunStatus(
            termination.reason, termination.exit_code, termination.finished_at, self.restart_count,
            self.waiting_reason,
        )  # fmt: skip

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RUN_STATUS_FIELDS}


RUN_STATUS_FIELDS = ("termination_reason", "exit_code", "finished_at", "restart_count", "waiting_reason")


@dataclass(frozen=True)
class KnownRun:
    pk: int
    running: bool
    status: RunStatus


@dataclass
class KnownPods:
    """What Postgres knows of the cluster's live pods, loaded with three queries."""

    pods: dict[str, KnownPod]  # uid -> pod
    # pod pk -> (container name, identity) -> the live run
    instances: dict[int, dict[tuple[str, str], KnownRun]]
    workloads: dict[tuple[str, str, str], int]  # (kind, namespace, name) -> pk
    workload_uids: dict[int, str] = field(default_factory=dict)  # pk -> its stored uid (podspec.owner_uid)


@dataclass
class ContainerChanges:
    """What the pods of the listing change in container runs, written in bulk at the end."""

    new: list[tuple[ContainerInstance, list[podspec.ConsumptionSpec]]] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    statuses: dict[int, RunStatus] = field(default_factory=dict)  # instance pk -> its status, changed


def _record_pods(cluster: Cluster, listing: Listing, now: datetime, recorded: Recorded) -> None:
    known = _known_pods(cluster)
    changes = ContainerChanges()
    seen: set[str] = set()
    # The pod watcher records beside the snapshot: what it wrote after this listing was read is newer than the
    # listing, and the listing must not undo it (a deleted pod listed alive, a container run it replaced).
    ended, touched = _recorded_since(cluster, listing)
    for item in listing.pods:
        metadata = item.get("metadata") or {}
        uid = metadata.get("uid", "")
        seen.add(uid)
        if uid in ended:
            continue
        pod = _record_pod(cluster, item, listing, known, now, recorded)
        if pod.pk not in touched:
            _compare_containers(pod, item, listing, known.instances.get(pod.pk, {}), now, changes)
    gone_pods = [
        pod.pk
        for uid, pod in known.pods.items()
        if uid not in seen
        and listing.fully_read(WorkloadKind.POD.plural, pod.namespace)
        # recorded (by the watcher) after this listing was read: not gone, just newer than the listing
        and (listing.started_at is None or pod.first_seen is None or pod.first_seen < listing.started_at)
    ]
    if gone_pods:
        recorded.rows += Pod.objects.filter(pk__in=gone_pods).update(deleted_at=now)
        changes.ended.extend(
            ContainerInstance.objects.filter(pod_id__in=gone_pods, ended_at=None).values_list("pk", flat=True)
        )
    _write_container_changes(changes, now, recorded)
    _record_owner_uids(listing, known, recorded)
    _record_schedules(cluster, listing)


def _record_owner_uids(listing: Listing, known: KnownPods, recorded: Recorded) -> None:
    """The UID of each workload its pods name as their controller, when it changed (a workload recorded before
    Driftwatch stored it, or deleted and created again under the same name): an operator-owned workload's pods are
    found by it (drift.rollout.evict)."""
    changed: dict[int, str] = {}
    for item in listing.pods:
        metadata = item.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            continue  # the pods of an owner deleted before one of the same name was created go; they do not count
        uid = podspec.owner_uid(metadata, listing.owners)
        kind, name = podspec.top_owner(metadata, listing.owners)
        pk = known.workloads.get((kind, metadata.get("namespace", ""), name))
        if uid and pk is not None and known.workload_uids.get(pk) != uid:
            changed[pk] = known.workload_uids[pk] = uid
    for pk, uid in changed.items():
        recorded.rows += Workload.objects.filter(pk=pk).update(uid=uid)


def _record_schedules(cluster: Cluster, listing: Listing) -> None:
    """The schedule of each CronJob Driftwatch files pods under, when it changed (CronJobs are few)."""
    if not listing.schedules:
        return
    cron_jobs = Workload.objects.filter(cluster=cluster, kind=WorkloadKind.CRON_JOB, deleted_at=None)
    for pk, namespace, name, stored in cron_jobs.values_list("pk", "namespace", "name", "schedule"):
        listed = listing.schedules.get((namespace, name))
        if listed is not None and listed != stored:
            Workload.objects.filter(pk=pk).update(schedule=listed)


def _recorded_since(cluster: Cluster, listing: Listing) -> tuple[set[str], set[int]]:
    """Pods (uids) ended, and pods (pks) whose container runs were recorded or ended, since the listing began."""
    if listing.started_at is None:
        return set(), set()
    since = listing.started_at
    ended = set(Pod.objects.filter(cluster=cluster, deleted_at__gte=since).values_list("uid", flat=True))
    touched = set(
        ContainerInstance.objects.filter(pod__cluster=cluster, pod__deleted_at=None)
        .filter(Q(first_seen__gte=since) | Q(ended_at__gte=since))
        .values_list("pod_id", flat=True)
    )
    return ended, touched


def _known_pods(cluster: Cluster, uid: str | None = None, workload: tuple[str, str, str] | None = None) -> KnownPods:
    """Every live pod of the cluster, or (a watch event) only the pod `uid` and the `workload` it belongs to."""
    live_pods = Pod.objects.filter(cluster=cluster, deleted_at=None)
    live_runs = ContainerInstance.objects.filter(pod__cluster=cluster, pod__deleted_at=None, ended_at=None)
    workloads_of = Workload.objects.filter(cluster=cluster)
    if uid is not None:
        live_pods, live_runs = live_pods.filter(uid=uid), live_runs.filter(pod__uid=uid)
    if workload is not None:
        workloads_of = workloads_of.filter(kind=workload[0], namespace=workload[1], name=workload[2])
    pods = {
        uid: KnownPod(pk, namespace, started_at, first_seen, terminating is not None)
        for pk, uid, namespace, started_at, first_seen, terminating in live_pods.values_list(
            "pk", "uid", "namespace", "started_at", "first_seen", "terminating_since"
        )
    }
    instances: dict[int, dict[tuple[str, str], KnownRun]] = defaultdict(dict)
    for pk, pod_id, name, identity, running, *status in live_runs.values_list(
        "pk", "pod_id", "name", "container_id", "running", *RUN_STATUS_FIELDS
    ):
        instances[pod_id][(name, identity)] = KnownRun(pk, running, RunStatus(*status))
    workloads, workload_uids = {}, {}
    for pk, kind, namespace, name, workload_uid in workloads_of.values_list("pk", "kind", "namespace", "name", "uid"):
        workloads[(kind, namespace, name)], workload_uids[pk] = pk, workload_uid
    return KnownPods(pods, instances, workloads, workload_uids)


def _record_pod(
    cluster: Cluster, item: dict[str, Any], listing: Listing, known: KnownPods, now: datetime, recorded: Recorded
) -> KnownPod:
    """The recorded pod of a listed one: created (with its workload) when new, its start filled in once the
    kubelet took it."""
    metadata = item.get("metadata") or {}
    uid, namespace = metadata.get("uid", ""), metadata.get("namespace", "")
    pod_started = podspec.parse_time((item.get("status") or {}).get("startTime"))
    node_name = (item.get("spec") or {}).get("nodeName") or ""
    # Being deleted (graceful termination, a finalizer): still listed, no longer a replica that stays.
    terminating_since = podspec.terminating_since(metadata)
    pod = known.pods.get(uid)
    if pod is None:
        kind, name = podspec.top_owner(metadata, listing.owners)
        workload_id = known.workloads.get((kind, namespace, name))
        if workload_id is None:
            uid_of_owner = podspec.owner_uid(metadata, listing.owners)
            workload_id = Workload.objects.create(
                cluster=cluster, kind=kind, namespace=namespace, name=name, uid=uid_of_owner, first_seen=now
            ).pk
            known.workloads[(kind, namespace, name)] = workload_id
            known.workload_uids[workload_id] = uid_of_owner
            recorded.rows += 1
        created = Pod.objects.create(
            cluster=cluster, workload_id=workload_id, namespace=namespace, name=metadata.get("name", ""),
            uid=uid, node_name=node_name, started_at=pod_started, first_seen=now,
            restarted_at=podspec.restarted_at(metadata), terminating_since=terminating_since,
            reloaded_by=podspec.reloaded_by(item),
        )  # fmt: skip
        pod = known.pods[uid] = KnownPod(created.pk, namespace, pod_started, now, terminating_since is not None)
        recorded.rows += 1
        return pod
    if pod.started_at is None and pod_started is not None:
        # First seen while pending: the kubelet has taken it since.
        Pod.objects.filter(pk=pod.pk).update(started_at=pod_started, node_name=node_name)
        recorded.rows += 1
    if terminating_since is not None and not pod.terminating:
        Pod.objects.filter(pk=pod.pk).update(terminating_since=terminating_since)
        recorded.rows += 1
    return pod


def _compare_containers(
    pod: KnownPod,
    item: dict[str, Any],
    listing: Listing,
    known: dict[tuple[str, str], KnownRun],
    now: datetime,
    changes: ContainerChanges,
) -> None:
    """New runs (env is fixed per run, so a restart is a new row), runs that stopped, runs that are gone, and
    what the status says of how runs ended (written only when it changed)."""
    pod_spec = item.get("spec") or {}
    current_keys = set()
    for run in podspec.container_runs(item):
        key = (run.name, run.identity)
        current_keys.add(key)
        instance = known.get(key)
        status = RunStatus(restart_count=run.restart_count, waiting_reason=run.waiting_reason)
        if run.termination is not None:
            status = status.ended(run.termination)
        elif instance is not None:  # a run's end, once seen, stays: the next status tells only the next run's
            stored = instance.status
            status = RunStatus(
                stored.termination_reason, stored.exit_code, stored.finished_at, run.restart_count, run.waiting_reason
            )
        if run.previous_termination is not None and run.previous_identity == run.identity:
            # A runtime that keeps the last container's id while the next one waits (CrashLoopBackOff): this run.
            status = status.ended(run.previous_termination)
        else:
            _previous_run_ended(run, known, changes)
        if instance is None:
            consumed = [
                spec
                for spec in podspec.consumptions_of(pod_spec, run.spec)
                if not listing.ignores(spec.source_kind, pod.namespace, spec.source_name)
            ]
            changes.new.append(
                (
                    ContainerInstance(
                        pod_id=pod.pk, name=run.name, init=run.init, container_id=run.identity,
                        started_at=run.started_at, running=run.running, first_seen=now,
                        reload_hints=podspec.reload_hints(item, run.name, _owner_annotations(item, listing)),
                        **status.fields(),
                    ),
                    consumed,
                )
            )  # fmt: skip
        else:
            if instance.running and not run.running:
                changes.stopped.append(instance.pk)
            if status != changes.statuses.get(instance.pk, instance.status):
                changes.statuses[instance.pk] = status
    changes.ended.extend(instance.pk for key, instance in known.items() if key not in current_keys)


def _previous_run_ended(
    run: podspec.ContainerRun, known: dict[tuple[str, str], KnownRun], changes: ContainerChanges
) -> None:
    """`lastState.terminated` tells how the run before `run` ended: stored on that run (while it is still live,
    i.e. in the event that starts the next one), found by its container id, or (a runtime that gives none, as
    kwok) as the one other live run of the same container. Nothing when it is not known which run it was."""
    ended = run.previous_termination
    if ended is None:
        return
    candidates = [
        instance
        for (name, identity), instance in known.items()
        if name == run.name and identity != run.identity and identity == (run.previous_identity or identity)
    ]
    if len(candidates) != 1:
        return
    previous = candidates[0]
    status = changes.statuses.get(previous.pk, previous.status)
    if status.ended(ended) != status:
        changes.statuses[previous.pk] = status.ended(ended)


def _owner_annotations(pod: dict[str, Any], listing: Listing) -> dict[str, str]:
    for reference in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return listing.owner_annotations.get(reference.get("uid", ""), {})
    return {}


def _write_container_changes(changes: ContainerChanges, now: datetime, recorded: Recorded) -> None:
    if changes.new:
        ContainerInstance.objects.bulk_create([instance for instance, _ in changes.new])
        consumptions = [
            Consumption(
                container=instance, source_kind=spec.source_kind, source_name=spec.source_name, mode=spec.mode,
                keys=list(spec.keys), env_names=dict(spec.env_names), env_prefix=spec.env_prefix,
                shadowed_env=list(spec.shadowed_env), paths=dict(spec.paths), mount_path=spec.mount_path,
                sub_path=spec.sub_path, optional=spec.optional,
            )
            for instance, specs in changes.new
            for spec in specs
        ]  # fmt: skip
        Consumption.objects.bulk_create(consumptions)
        recorded.rows += len(changes.new) + len(consumptions)
    if changes.stopped:
        recorded.rows += ContainerInstance.objects.filter(pk__in=changes.stopped).update(running=False)
    if changes.ended:
        recorded.rows += ContainerInstance.objects.filter(pk__in=changes.ended).update(ended_at=now, running=False)
    # One UPDATE per run whose end or restart count changed: a handful per event, none when nothing happened.
    for pk, status in changes.statuses.items():
        recorded.rows += ContainerInstance.objects.filter(pk=pk).update(**status.fields())
