"""One snapshot cycle against one cluster.

1. LIST, paginated: ConfigMaps, Secrets, Pods, ReplicaSets, Jobs (the pods' owners) and Nodes. Secret
   values are hashed as each page arrives and dropped. No per-object GET: the number of API calls does
   not grow with the number of pods. A 403 on a cluster-wide LIST falls back to one LIST per namespace,
   and a namespace that stays forbidden is reported, not guessed.
2. Compare with what Postgres knows and write only what changed: new versions, new pods and container
   runs, deletions. Nothing is written when nothing changed, except the run record.
3. Probe, through pods/exec, only what could have changed since it was last read.

All reads happen before any write, so a cluster that stops answering halfway loses nothing recorded."""

from __future__ import annotations

import base64
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from drift import kube, podspec, probes
from drift.clusters import connect
from drift.models import (
    AuditEvent,
    Cluster,
    Consumption,
    ContainerInstance,
    Observation,
    Pod,
    SnapshotRun,
    Source,
    SourceVersion,
    Workload,
)

log = logging.getLogger(__name__)

ACTOR = "driftwatch"
# A volume is probed again while its source changed less than the propagation window plus this ago:
# long enough for one probe after the window even when a cycle runs late.
RECENT_CHANGE_MARGIN = timedelta(minutes=2)
SIMULATED_NODE_ANNOTATION = "kwok.x-k8s.io/node"
LISTED_RESOURCES = {
    "configmaps": "/api/v1/configmaps",
    "secrets": "/api/v1/secrets",
    "pods": "/api/v1/pods",
    "replicasets": "/apis/apps/v1/replicasets",
    "jobs": "/apis/batch/v1/jobs",
}


class SnapshotFailed(Exception):
    pass


@dataclass
class ListedSource:
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    immutable: bool
    modified_at: datetime | None
    key_hashes: dict[str, str]
    binary_keys: list[str]
    data: dict[str, str]  # ConfigMaps only; always empty for Secrets
    size_bytes: int


@dataclass
class Listing:
    sources: list[ListedSource] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)  # ReplicaSet/Job uid -> controller
    simulated_nodes: set[str] = field(default_factory=set)
    # resource -> namespaces read in full; None means every namespace was read.
    complete: dict[str, set[str] | None] = field(default_factory=dict)
    forbidden: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # namespace -> resources

    def fully_read(self, resource: str, namespace: str) -> bool:
        scope = self.complete.get(resource)
        return scope is None or namespace in scope


# -- 1. reading the cluster ---------------------------------------------------------------------------


def read_cluster(client: kube.KubeClient, hasher: probes.ValueHasher) -> Listing:
    listing = Listing()
    namespaces: list[str] | None = None
    for resource, path in LISTED_RESOURCES.items():
        try:
            items = list(_digest(resource, client.list_paginated(path, what=f"list {resource}"), hasher))
            listing.complete[resource] = None
        except kube.Forbidden:
            if namespaces is None:
                namespaces = _namespaces(client)
            items = []
            listing.complete[resource] = set()
            for namespace in namespaces:
                namespaced = path.replace("/v1/", f"/v1/namespaces/{namespace}/", 1)
                try:
                    page = client.list_paginated(namespaced, what=f"list {resource} in {namespace}")
                    items.extend(_digest(resource, page, hasher))
                    listing.complete[resource].add(namespace)
                except kube.Forbidden:
                    listing.forbidden[namespace].add(resource)
        _store(listing, resource, items)
    try:
        for node in client.list_paginated("/api/v1/nodes", what="list nodes"):
            metadata = node.get("metadata") or {}
            if (metadata.get("annotations") or {}).get(SIMULATED_NODE_ANNOTATION):
                listing.simulated_nodes.add(metadata.get("name", ""))
    except kube.Forbidden:
        pass  # without nodes we cannot tell simulated ones apart; file probes then fail on their own
    return listing


def _namespaces(client: kube.KubeClient) -> list[str]:
    try:
        return [
            item["metadata"]["name"] for item in client.list_paginated("/api/v1/namespaces", what="list namespaces")
        ]
    except kube.Forbidden as error:
        raise SnapshotFailed(f"cannot read the cluster: {error} and cluster-wide lists are forbidden") from None


def _digest(resource: str, items: Any, hasher: probes.ValueHasher) -> Any:
    """Turn ConfigMaps and Secrets into ListedSource as each page arrives; Secret values go no further."""
    if resource == "configmaps":
        return (_listed_source("ConfigMap", item, hasher) for item in items)
    if resource == "secrets":
        return (_listed_source("Secret", item, hasher) for item in items)
    return items


def _listed_source(kind: str, item: dict[str, Any], hasher: probes.ValueHasher) -> ListedSource:
    metadata = item.get("metadata") or {}
    key_hashes: dict[str, str] = {}
    data: dict[str, str] = {}
    size = 0
    text_values = item.get("data") or {}
    binary_values = item.get("binaryData") or {}
    for key, value in text_values.items():
        raw = base64.b64decode(value) if kind == "Secret" else value.encode("utf-8", "surrogateescape")
        key_hashes[key] = hasher.value(raw)
        size += len(raw)
        if kind == "ConfigMap":
            data[key] = value
    for key, value in binary_values.items():
        raw = base64.b64decode(value)
        key_hashes[key] = hasher.value(raw)
        size += len(raw)
    return ListedSource(
        kind=kind,
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        resource_version=metadata.get("resourceVersion", ""),
        immutable=bool(item.get("immutable")),
        modified_at=podspec.data_modified_at(metadata) or podspec.parse_time(metadata.get("creationTimestamp")),
        key_hashes=key_hashes,
        binary_keys=sorted(binary_values),
        data=data,
        size_bytes=size,
    )


def _store(listing: Listing, resource: str, items: list[Any]) -> None:
    if resource in ("configmaps", "secrets"):
        listing.sources.extend(items)
    elif resource == "pods":
        listing.pods = items
    else:
        kind = "ReplicaSet" if resource == "replicasets" else "Job"
        for item in items:
            metadata = item.get("metadata") or {}
            listing.owners[metadata.get("uid", "")] = podspec.controller_of(metadata, kind)


# -- 2. recording what changed ------------------------------------------------------------------------


@dataclass
class Recorded:
    rows: int = 0


def record(cluster: Cluster, listing: Listing, now: datetime) -> Recorded:
    recorded = Recorded()
    first_sighting = not cluster.runs.filter(
        status__in=[SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL]
    ).exists()
    with transaction.atomic():
        _record_sources(cluster, listing, now, first_sighting, recorded)
        _record_pods(cluster, listing, now, recorded)
    return recorded


def _record_sources(
    cluster: Cluster, listing: Listing, now: datetime, first_sighting: bool, recorded: Recorded
) -> None:
    live = {source.uid: source for source in Source.objects.filter(cluster=cluster, deleted_at=None)}
    latest = {
        version.source_id: version
        for version in SourceVersion.objects.filter(source__in=live.values())
        .only("id", "source_id", "content_hash", "key_hashes", "first_seen")
        .latest_per_source()
    }
    new_versions: list[SourceVersion] = []
    audits: list[AuditEvent] = []
    seen: set[str] = set()
    for listed in listing.sources:
        seen.add(listed.uid)
        content_hash = probes.ValueHasher.content(listed.key_hashes, listed.binary_keys)
        source = live.get(listed.uid)
        if source is None:
            source = Source.objects.create(
                cluster=cluster, kind=listed.kind, namespace=listed.namespace, name=listed.name,
                uid=listed.uid, immutable=listed.immutable, first_seen=now,
            )  # fmt: skip
            recorded.rows += 1
            if not first_sighting:
                audits.append(_config_audit(cluster, listed, AuditEvent.Action.CONFIG_CREATED, "created", {}))
        elif latest.get(source.pk) and latest[source.pk].content_hash == content_hash:
            continue
        previous = latest.get(source.pk)
        new_versions.append(
            SourceVersion(
                source=source, content_hash=content_hash, resource_version=listed.resource_version,
                first_seen=now, modified_at=listed.modified_at, key_hashes=listed.key_hashes,
                data=listed.data, binary_keys=listed.binary_keys, size_bytes=listed.size_bytes,
            )
        )  # fmt: skip
        if previous is not None:
            changes = _key_changes(previous.key_hashes, listed.key_hashes)
            audits.append(_config_audit(cluster, listed, AuditEvent.Action.CONFIG_CHANGED, "changed", changes))
    SourceVersion.objects.bulk_create(new_versions)
    recorded.rows += len(new_versions)
    gone = [
        source
        for uid, source in live.items()
        if uid not in seen and listing.fully_read(_resource_of(source.kind), source.namespace)
    ]
    if gone:
        Source.objects.filter(pk__in=[source.pk for source in gone]).update(deleted_at=now)
        recorded.rows += len(gone)
        for source in gone:
            audits.append(
                AuditEvent(
                    actor=ACTOR, action=AuditEvent.Action.CONFIG_DELETED, cluster_name=cluster.name,
                    namespace=source.namespace, object_kind=source.kind, object_name=source.name,
                    message=f"{source.kind} {source.namespace}/{source.name} deleted",
                )
            )  # fmt: skip
    AuditEvent.objects.bulk_create(audits)


def _resource_of(kind: str) -> str:
    return "configmaps" if kind == "ConfigMap" else "secrets"


def _key_changes(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """Key names only, never values: what an audit entry may say about a change."""
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(key for key in set(before) & set(after) if before[key] != after[key]),
    }


def _config_audit(
    cluster: Cluster, listed: ListedSource, action: str, verb: str, changes: dict[str, list[str]]
) -> AuditEvent:
    summary = "; ".join(f"{what}: {', '.join(keys)}" for what, keys in changes.items() if keys)
    return AuditEvent(
        actor=ACTOR, action=action, cluster_name=cluster.name, namespace=listed.namespace,
        object_kind=listed.kind, object_name=listed.name,
        message=f"{listed.kind} {listed.namespace}/{listed.name} {verb}" + (f" ({summary})" if summary else ""),
        detail={"resource_version": listed.resource_version, **changes},
    )  # fmt: skip


@dataclass(frozen=True)
class KnownPod:
    """What an idle cycle needs of a recorded pod: plain values, no model instances (thousands of pods)."""

    pk: int
    namespace: str
    started_at: datetime | None


def _record_pods(cluster: Cluster, listing: Listing, now: datetime, recorded: Recorded) -> None:
    live_pods = {
        uid: KnownPod(pk, namespace, started_at)
        for pk, uid, namespace, started_at in Pod.objects.filter(cluster=cluster, deleted_at=None).values_list(
            "pk", "uid", "namespace", "started_at"
        )
    }
    # pod pk -> (container name, identity) -> (instance pk, running)
    instances: dict[int, dict[tuple[str, str], tuple[int, bool]]] = defaultdict(dict)
    for pk, pod_id, name, identity, running in ContainerInstance.objects.filter(
        pod__cluster=cluster, pod__deleted_at=None, ended_at=None
    ).values_list("pk", "pod_id", "name", "container_id", "running"):
        instances[pod_id][(name, identity)] = (pk, running)
    workloads: dict[tuple[str, str, str], int] = {
        (kind, namespace, name): pk
        for pk, kind, namespace, name in Workload.objects.filter(cluster=cluster).values_list(
            "pk", "kind", "namespace", "name"
        )
    }

    new_instances: list[tuple[ContainerInstance, list[podspec.ConsumptionSpec]]] = []
    ended: list[int] = []
    stopped: list[int] = []
    seen: set[str] = set()
    for item in listing.pods:
        metadata = item.get("metadata") or {}
        uid, namespace = metadata.get("uid", ""), metadata.get("namespace", "")
        seen.add(uid)
        pod_spec = item.get("spec") or {}
        pod_started = podspec.parse_time((item.get("status") or {}).get("startTime"))
        node_name = pod_spec.get("nodeName") or ""
        pod = live_pods.get(uid)
        if pod is None:
            kind, name = podspec.top_owner(metadata, listing.owners)
            workload_id = workloads.get((kind, namespace, name))
            if workload_id is None:
                workload_id = Workload.objects.create(
                    cluster=cluster, kind=kind, namespace=namespace, name=name, first_seen=now
                ).pk
                workloads[(kind, namespace, name)] = workload_id
                recorded.rows += 1
            created = Pod.objects.create(
                cluster=cluster, workload_id=workload_id, namespace=namespace, name=metadata.get("name", ""),
                uid=uid, node_name=node_name, started_at=pod_started, first_seen=now,
            )  # fmt: skip
            pod = live_pods[uid] = KnownPod(created.pk, namespace, pod_started)
            recorded.rows += 1
        elif pod.started_at is None and pod_started is not None:
            # First seen while pending: the kubelet has taken it since.
            Pod.objects.filter(pk=pod.pk).update(started_at=pod_started, node_name=node_name)
            recorded.rows += 1
        known = instances.get(pod.pk, {})
        current_keys = set()
        for run in podspec.container_runs(item):
            key = (run.name, run.identity)
            current_keys.add(key)
            instance = known.get(key)
            if instance is None:
                new_instances.append(
                    (
                        ContainerInstance(
                            pod_id=pod.pk, name=run.name, init=run.init, container_id=run.identity,
                            started_at=run.started_at, running=run.running, first_seen=now,
                        ),
                        podspec.consumptions_of(pod_spec, run.spec),
                    )
                )  # fmt: skip
            elif instance[1] and not run.running:
                stopped.append(instance[0])
        ended.extend(pk for key, (pk, _) in known.items() if key not in current_keys)

    if new_instances:
        ContainerInstance.objects.bulk_create([instance for instance, _ in new_instances])
        consumptions = [
            Consumption(
                container=instance, source_kind=spec.source_kind, source_name=spec.source_name, mode=spec.mode,
                keys=list(spec.keys), env_names=dict(spec.env_names), env_prefix=spec.env_prefix,
                shadowed_env=list(spec.shadowed_env), paths=dict(spec.paths), mount_path=spec.mount_path,
                sub_path=spec.sub_path, optional=spec.optional,
            )
            for instance, specs in new_instances
            for spec in specs
        ]  # fmt: skip
        Consumption.objects.bulk_create(consumptions)
        recorded.rows += len(new_instances) + len(consumptions)
    if stopped:
        recorded.rows += ContainerInstance.objects.filter(pk__in=stopped).update(running=False)
    gone_pods = [
        pod.pk for uid, pod in live_pods.items() if uid not in seen and listing.fully_read("pods", pod.namespace)
    ]
    if gone_pods:
        recorded.rows += Pod.objects.filter(pk__in=gone_pods).update(deleted_at=now)
        ended.extend(ContainerInstance.objects.filter(pod_id__in=gone_pods, ended_at=None).values_list("pk", flat=True))
    if ended:
        recorded.rows += ContainerInstance.objects.filter(pk__in=ended).update(ended_at=now, running=False)


# -- 3. probing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeTask:
    namespace: str
    pod: str
    container: str
    kind: str  # "env" or "files"
    consumption_ids: tuple[int, ...]
    mount_path: str = ""
    relative_paths: tuple[str, ...] = ()


@dataclass
class ProbeOutcome:
    task: ProbeTask
    output: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A consumption that may need a probe, as plain values (thousands of rows after a mass change)."""

    pk: int
    container_pk: int
    mode: str
    source_kind: str
    source_name: str
    keys: list[str]
    paths: dict[str, str]
    mount_path: str
    container: str
    pod: str
    namespace: str
    node_name: str


@dataclass(frozen=True, slots=True)
class _LastRead:
    observed_at: datetime
    ok: bool
    key_hashes: dict[str, str | None]


_CANDIDATE_FIELDS = (
    "pk", "container_id", "mode", "source_kind", "source_name", "keys", "paths", "mount_path", "container__name",
    "container__pod__name", "container__pod__namespace", "container__pod__node_name",
)  # fmt: skip


def plan_probes(cluster: Cluster, listing: Listing, now: datetime) -> tuple[list[ProbeTask], list[Observation]]:
    """Which containers to exec into, and the observations we can write without exec (simulated nodes).

    A container is probed when it has not been observed yet (a new run: env is fixed per run), and a
    volume consumer again when its source changed after the last observation, or its last read showed
    older content and the propagation window is not over yet."""
    window = timedelta(seconds=cluster.propagation_window_seconds)
    running = Consumption.objects.filter(
        container__pod__cluster=cluster, container__pod__deleted_at=None, container__ended_at=None,
        container__running=True,
    )  # fmt: skip
    # Only two kinds of consumer can need a probe, and both are found without loading the others:
    # never observed, or a volume whose source changed recently enough for the kubelet to be busy.
    observed = Exists(Observation.objects.filter(consumption=OuterRef("pk")))
    recently_changed = _recently_changed_sources(cluster, now - window - RECENT_CHANGE_MARGIN)
    # Narrowed by name and namespace in SQL, then exactly by (namespace, kind, name) here.
    changed_volumes = Q(
        mode__in=["volume", "projected"],
        source_name__in={name for _, _, name in recently_changed},
        container__pod__namespace__in={namespace for namespace, _, _ in recently_changed},
    )
    candidates = [
        _Candidate(*row[1:])
        for row in running.annotate(observed=observed)
        .filter(Q(observed=False) | changed_volumes)
        .order_by("container_id", "id")
        .values_list("observed", *_CANDIDATE_FIELDS)
        if not row[0] or (row[11], row[4], row[5]) in recently_changed
    ]
    if not candidates:
        return [], []
    last_reads = {
        consumption_id: _LastRead(observed_at, ok, key_hashes)
        for consumption_id, observed_at, ok, key_hashes in Observation.objects.filter(
            consumption_id__in=[candidate.pk for candidate in candidates]
        )
        .latest_per_consumption()
        .values_list("consumption_id", "observed_at", "ok", "key_hashes")
    }
    current = _current_versions(cluster)
    env_groups: dict[int, list[_Candidate]] = defaultdict(list)
    tasks: list[ProbeTask] = []
    immediate: list[Observation] = []
    for candidate in candidates:
        last = last_reads.get(candidate.pk)
        if candidate.mode in ("env", "envFrom"):
            if last is None:
                env_groups[candidate.container_pk].append(candidate)
            continue
        version = current.get((candidate.namespace, candidate.source_kind, candidate.source_name))
        if not _volume_needs_probe(candidate.mode, last, version, window):
            continue
        skip_reason = _file_probe_skipped(cluster, candidate.node_name, listing)
        if skip_reason:
            immediate.append(Observation(consumption_id=candidate.pk, observed_at=now, ok=False, reason=skip_reason))
            continue
        if candidate.mode == "subPath":
            mount, _, file_name = candidate.mount_path.rpartition("/")
            mount, relative = mount or "/", [file_name]
        else:
            mount, relative = candidate.mount_path, _relative_paths(candidate, version)
        tasks.append(
            ProbeTask(
                candidate.namespace, candidate.pod, candidate.container, "files", (candidate.pk,),
                mount_path=mount, relative_paths=tuple(relative),
            )
        )  # fmt: skip
    for group in env_groups.values():
        first = group[0]
        tasks.append(ProbeTask(first.namespace, first.pod, first.container, "env", tuple(c.pk for c in group)))
    return tasks, immediate


def _file_probe_skipped(cluster: Cluster, node_name: str, listing: Listing) -> str:
    if cluster.file_probes == Cluster.FileProbes.NEVER:
        return "file probes disabled for this cluster"
    if cluster.file_probes == Cluster.FileProbes.AUTO and node_name in listing.simulated_nodes:
        return "no files on simulated node"
    return ""


def _recently_changed_sources(cluster: Cluster, since: datetime) -> set[tuple[str, str, str]]:
    return set(
        SourceVersion.objects.filter(source__cluster=cluster, first_seen__gte=since).values_list(
            "source__namespace", "source__kind", "source__name"
        )
    )


def _current_versions(cluster: Cluster) -> dict[tuple[str, str, str], SourceVersion]:
    versions = (
        SourceVersion.objects.filter(source__cluster=cluster, source__deleted_at=None)
        .select_related("source")
        .defer("data")  # ConfigMap values can weigh a MiB each; probes compare hashes only
        .latest_per_source()
    )
    return {(v.source.namespace, v.source.kind, v.source.name): v for v in versions}


def _volume_needs_probe(mode: str, last: _LastRead | None, version: SourceVersion | None, window: timedelta) -> bool:
    if last is None:
        return True
    if version is None or mode == "subPath":
        return False  # a subPath file never changes once the container runs
    if last.observed_at < version.first_seen:
        return True
    if not last.ok:
        return False
    wanted = {key: version.key_hashes.get(key) for key in last.key_hashes}
    matches_current = wanted == last.key_hashes
    # Keep looking while the kubelet may still be rewriting the volume, and once just after the window.
    return not matches_current and last.observed_at < version.appeared_at() + window


def _relative_paths(candidate: _Candidate, version: SourceVersion | None) -> list[str]:
    if candidate.paths:
        return sorted(candidate.paths)
    keys = candidate.keys or sorted((version.key_hashes if version else {}).keys())
    return list(keys)


def run_probes(
    client: kube.KubeClient, tasks: list[ProbeTask], concurrency: int, timeout_seconds: float
) -> list[ProbeOutcome]:
    def probe(task: ProbeTask) -> ProbeOutcome:
        try:
            if task.kind == "env":
                try:
                    output = client.exec_in_container(
                        task.namespace, task.pod, task.container, probes.ENV_COMMAND, timeout_seconds
                    )
                except kube.ExecFailed:
                    output = client.exec_in_container(
                        task.namespace, task.pod, task.container, probes.ENV_FALLBACK_COMMAND, timeout_seconds
                    )
            else:
                command = probes.files_command(task.mount_path, task.relative_paths)
                output = client.exec_in_container(task.namespace, task.pod, task.container, command, timeout_seconds)
            return ProbeOutcome(task, output)
        except kube.Forbidden as error:
            return ProbeOutcome(task, None, f"exec forbidden ({error.permission or 'create pods/exec'})")
        except kube.ExecTimeout:
            return ProbeOutcome(task, None, f"exec timed out after {timeout_seconds:g}s")
        except kube.NotFound:
            return ProbeOutcome(task, None, "pod gone before it could be read")
        except kube.KubeError as error:
            return ProbeOutcome(task, None, f"exec failed: {str(error)[:200]}")

    if not tasks:
        return []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(probe, tasks))


def observations_from(
    cluster: Cluster, outcomes: list[ProbeOutcome], hasher: probes.ValueHasher, now: datetime
) -> list[Observation]:
    ids = [cid for outcome in outcomes for cid in outcome.task.consumption_ids]
    consumptions = {c.pk: c for c in Consumption.objects.filter(pk__in=ids).select_related("container__pod")}
    known_keys = _known_keys(cluster)
    observations: list[Observation] = []
    for outcome in outcomes:
        for consumption_id in outcome.task.consumption_ids:
            consumption = consumptions[consumption_id]
            if outcome.output is None:
                observations.append(
                    Observation(consumption=consumption, observed_at=now, ok=False, reason=outcome.reason)
                )
                continue
            source_key = (consumption.container.pod.namespace, consumption.source_kind, consumption.source_name)
            if outcome.task.kind == "env":
                expectation = probes.EnvExpectation(
                    mode=consumption.mode, env_names=consumption.env_names, prefix=consumption.env_prefix,
                    shadowed=frozenset(consumption.shadowed_env),
                )  # fmt: skip
                hashes = probes.observed_env_hashes(
                    expectation, probes.parse_environ(outcome.output), known_keys.get(source_key, ()), hasher
                )
                observations.append(Observation(consumption=consumption, observed_at=now, ok=True, key_hashes=hashes))
            else:
                read = probes.parse_files_output(outcome.output)
                path_to_key = consumption.paths or {path: path for path in read.contents}
                hashes = {
                    path_to_key.get(path, path): (hasher.value(text) if text is not None else None)
                    for path, text in read.contents.items()
                }
                observations.append(
                    Observation(
                        consumption=consumption, observed_at=now, ok=True, key_hashes=hashes,
                        volume_written_at=read.data_dir_written_at,
                    )
                )  # fmt: skip
    return observations


def _known_keys(cluster: Cluster) -> dict[tuple[str, str, str], set[str]]:
    keys: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for namespace, kind, name, key_hashes in SourceVersion.objects.filter(source__cluster=cluster).values_list(
        "source__namespace", "source__kind", "source__name", "key_hashes"
    ):
        keys[(namespace, kind, name)].update(key_hashes)
    return keys


# -- the whole cycle --------------------------------------------------------------------------------


def snapshot(cluster: Cluster, now: datetime | None = None) -> SnapshotRun:
    """Run one cycle and return its run record. Never raises for a cluster that cannot be read: the run
    is recorded as failed with its error, and everything recorded before stays as it was."""
    run = SnapshotRun.objects.create(cluster=cluster, started_at=now or timezone.now())
    hasher = probes.ValueHasher(settings.SECRET_KEY)
    try:
        with connect(cluster) as client:
            listing = read_cluster(client, hasher)
            moment = timezone.now()
            recorded = record(cluster, listing, moment)
            tasks, immediate = plan_probes(cluster, listing, moment)
            outcomes = run_probes(client, tasks, cluster.exec_concurrency, cluster.exec_timeout_seconds)
            observations = immediate + observations_from(cluster, outcomes, hasher, timezone.now())
            Observation.objects.bulk_create(observations)
            run.api_calls = client.request_count
        run.exec_probes = len(tasks)
        run.rows_written = recorded.rows + len(observations)
        run.forbidden_namespaces = sorted(listing.forbidden)
        run.status = SnapshotRun.Status.PARTIAL if listing.forbidden else SnapshotRun.Status.SUCCEEDED
        Cluster.objects.filter(pk=cluster.pk).update(last_contact_at=timezone.now())
    except (kube.KubeError, SnapshotFailed) as error:
        run.status = SnapshotRun.Status.FAILED
        run.error = str(error)
        log.warning("snapshot of %s failed: %s", cluster.name, error)
        _audit_first_failure(cluster, run)
    run.finished_at = timezone.now()
    if run.status != SnapshotRun.Status.FAILED:
        run.verdict_counts = _verdict_counts(cluster, run)
    run.save()
    return run


def _audit_first_failure(cluster: Cluster, run: SnapshotRun) -> None:
    """One audit entry when a cluster stops answering, not one per cycle while it stays down."""
    previous = cluster.runs.exclude(pk=run.pk).exclude(status=SnapshotRun.Status.RUNNING).first()
    if previous is None or previous.status != SnapshotRun.Status.FAILED:
        AuditEvent.objects.create(
            actor=ACTOR, action=AuditEvent.Action.SNAPSHOT_FAILED, cluster_name=cluster.name,
            message=f"snapshot of {cluster.name} failed: {run.error}",
        )  # fmt: skip


def _verdict_counts(cluster: Cluster, run: SnapshotRun) -> dict[str, int]:
    """Pods per worst verdict. When nothing was written and nothing was propagating, the verdicts are
    those of the previous good run: only a propagation window can change a verdict on the clock alone."""
    from drift.report import verdict_counts  # late import: report reads what this module writes

    previous = (
        cluster.runs.filter(status__in=[SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL])
        .exclude(pk=run.pk)
        .first()
    )
    unchanged = (
        previous is not None
        and run.rows_written == 0
        and previous.verdict_counts
        and not previous.verdict_counts.get("propagating")
        and previous.status == run.status
        and previous.forbidden_namespaces == run.forbidden_namespaces
    )
    if unchanged:
        return previous.verdict_counts
    return verdict_counts(cluster, now=run.finished_at)
