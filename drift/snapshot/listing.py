"""Step 1 of a cycle: LIST, paginated, ConfigMaps, Secrets, Pods, ReplicaSets, Jobs (the pods' owners), CronJobs
(their schedules, optional) and Nodes. Secret values are hashed as each page arrives and dropped. No per-object
GET: the number of API calls does not grow with the number of pods. A 403 on a cluster-wide LIST falls back to
one LIST per namespace, and a namespace that stays forbidden is reported, not guessed. ConfigMaps matching the
cluster's ignore patterns (drift.ignoring) are dropped here, before anything of them is hashed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from drift import kube, podspec
from drift.authorship import client_label, content_writer
from drift.hashing import ValueHasher, content_hash, raw_values
from drift.ignoring import is_ignored
from drift.vocabulary import SourceKind, WorkloadKind

SIMULATED_NODE_ANNOTATION = "kwok.x-k8s.io/node"
LISTED_RESOURCES = {
    SourceKind.CONFIG_MAP.plural: "/api/v1/configmaps",
    SourceKind.SECRET.plural: "/api/v1/secrets",
    WorkloadKind.POD.plural: "/api/v1/pods",
    WorkloadKind.REPLICA_SET.plural: "/apis/apps/v1/replicasets",
    WorkloadKind.JOB.plural: "/apis/batch/v1/jobs",
}
SOURCE_RESOURCES = tuple(kind.plural for kind in SourceKind)


class SnapshotFailed(Exception):
    """The cluster cannot be read at all; the message is ours, never a value read from the cluster."""


@dataclass
class ListedSource:
    kind: SourceKind
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
    # The field manager that wrote the content last (managedFields): a client, never a person.
    client: str = ""
    # The content hash under each previous hash key still in use (drift.snapshot.rekeying), by key id.
    previous_content_hashes: dict[str, str] = field(default_factory=dict)
    # previous key id -> value hash under that key -> value hash under the current key.
    translations: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return content_hash(self.key_hashes, self.binary_keys)


@dataclass(frozen=True)
class Hashers:
    """The current hasher, and the previous ones whose hashes are still stored (empty almost always)."""

    current: ValueHasher
    previous: Sequence[ValueHasher] = ()


@dataclass
class Listing:
    sources: list[ListedSource] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)  # ReplicaSet/Job uid -> controller
    # ReplicaSet/Job uid -> its restart-tool annotations (a Deployment's reach its ReplicaSets), when it has any.
    owner_annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    simulated_nodes: set[str] = field(default_factory=set)
    # resource -> namespaces read in full; None means every namespace was read.
    complete: dict[str, set[str] | None] = field(default_factory=dict)
    forbidden: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # namespace -> resources
    ignored_patterns: tuple[str, ...] = ()
    # When reading began: a source recorded after it (by the watcher) is not gone for not being listed.
    started_at: datetime | None = None
    # (namespace, name) of each CronJob -> its schedule, timeZone and suspend (its next run, drift.schedules).
    schedules: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def fully_read(self, resource: str, namespace: str) -> bool:
        scope = self.complete.get(resource)
        return scope is None or namespace in scope

    def ignores(self, kind: str, namespace: str, name: str) -> bool:
        return kind == SourceKind.CONFIG_MAP and is_ignored(self.ignored_patterns, namespace, name)


def read_cluster(
    client: kube.KubeClient, hashers: Hashers, ignored_patterns: Iterable[str] = (), only_namespaces: Sequence[str] = ()
) -> Listing:
    """Every namespace, or with `only_namespaces` (a cluster in namespaced mode: a Role in each, no cluster-wide
    list) one LIST per listed namespace and nothing of the others."""
    listing = Listing(ignored_patterns=tuple(ignored_patterns), started_at=timezone.now())
    namespaces: list[str] | None = list(only_namespaces) or None
    for resource, path in LISTED_RESOURCES.items():
        if not only_namespaces:
            try:
                items = list(_digest(resource, client.list_paginated(path, what=f"list {resource}"), hashers, listing))
                listing.complete[resource] = None
                _store(listing, resource, items)
                continue
            except kube.Forbidden:
                pass  # read namespace by namespace, as far as RBAC allows
        if namespaces is None:
            namespaces = _namespaces(client)
        items = []
        readable: set[str] = set()
        listing.complete[resource] = readable
        for namespace in namespaces:
            namespaced = path.replace("/v1/", f"/v1/namespaces/{namespace}/", 1)
            try:
                page = client.list_paginated(namespaced, what=f"list {resource} in {namespace}")
                items.extend(_digest(resource, page, hashers, listing))
                readable.add(namespace)
            except kube.Forbidden:
                listing.forbidden[namespace].add(resource)
        _store(listing, resource, items)
    _read_schedules(client, listing, only_namespaces)
    try:
        for node in client.list_paginated("/api/v1/nodes", what="list nodes"):
            metadata = node.get("metadata") or {}
            if (metadata.get("annotations") or {}).get(SIMULATED_NODE_ANNOTATION):
                listing.simulated_nodes.add(metadata.get("name", ""))
    except kube.Forbidden:
        pass  # without nodes we cannot tell simulated ones apart; file probes then fail on their own
    return listing


CRON_JOBS_PATH = "/apis/batch/v1/cronjobs"


def _read_schedules(client: kube.KubeClient, listing: Listing, only_namespaces: Sequence[str]) -> None:
    """Each CronJob's schedule, for its next run. Optional, as nodes are: without the right to list CronJobs the
    workload page says it cannot tell, and nothing else of the cycle changes."""
    paths = [CRON_JOBS_PATH.replace("/v1/", f"/v1/namespaces/{ns}/", 1) for ns in only_namespaces] or [CRON_JOBS_PATH]
    for path in paths:
        try:
            for item in client.list_paginated(path, what="list cronjobs"):
                metadata, spec = item.get("metadata") or {}, item.get("spec") or {}
                listing.schedules[(metadata.get("namespace", ""), metadata.get("name", ""))] = {
                    "schedule": str(spec.get("schedule") or ""),
                    "timeZone": spec.get("timeZone") or "",
                    "suspend": bool(spec.get("suspend")),
                }
        except kube.Forbidden:
            continue


def _namespaces(client: kube.KubeClient) -> list[str]:
    try:
        return [
            item["metadata"]["name"] for item in client.list_paginated("/api/v1/namespaces", what="list namespaces")
        ]
    except kube.Forbidden as error:
        raise SnapshotFailed(f"cannot read the cluster: {error} and cluster-wide lists are forbidden") from None


def _digest(resource: str, items: Iterable[dict[str, Any]], hashers: Hashers, listing: Listing) -> Iterator[Any]:
    """Turn ConfigMaps and Secrets into ListedSource as each page arrives; Secret values go no further."""
    if resource not in SOURCE_RESOURCES:
        yield from items
        return
    kind = SourceKind.from_plural(resource)
    for item in items:
        metadata = item.get("metadata") or {}
        if listing.ignores(kind, metadata.get("namespace", ""), metadata.get("name", "")):
            continue
        yield listed_source(kind, item, hashers)


def listed_source(kind: SourceKind, item: dict[str, Any], hashers: Hashers) -> ListedSource:
    metadata = item.get("metadata") or {}
    key_hashes: dict[str, str] = {}
    previous: dict[str, dict[str, str]] = {hasher.key_id: {} for hasher in hashers.previous}
    translations: dict[str, dict[str, str]] = {hasher.key_id: {} for hasher in hashers.previous}
    binary_keys: list[str] = []
    size = 0
    for key, raw, binary in raw_values(kind, item):
        key_hashes[key] = hashers.current.value(raw)
        for hasher in hashers.previous:
            previous[hasher.key_id][key] = old = hasher.value(raw)
            translations[hasher.key_id][old] = key_hashes[key]
        size += len(raw)
        if binary:
            binary_keys.append(key)
    binary_keys.sort()
    # PostgreSQL's jsonb cannot hold a NUL character: such a value is kept as its hash only (like a Secret's),
    # rather than failing the whole cycle.
    data = {key: value for key, value in (item.get("data") or {}).items() if "\x00" not in value}
    if kind != SourceKind.CONFIG_MAP:
        data = {}
    return ListedSource(
        kind=kind,
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        resource_version=metadata.get("resourceVersion", ""),
        immutable=bool(item.get("immutable")),
        modified_at=podspec.data_modified_at(metadata) or podspec.parse_time(metadata.get("creationTimestamp")),
        client=client_label(content_writer(metadata)),
        key_hashes=key_hashes,
        binary_keys=binary_keys,
        data=data,
        size_bytes=size,
        previous_content_hashes={key_id: content_hash(hashes, binary_keys) for key_id, hashes in previous.items()},
        translations=translations,
    )


def _store(listing: Listing, resource: str, items: list[Any]) -> None:
    if resource in SOURCE_RESOURCES:
        listing.sources.extend(items)
    elif resource == WorkloadKind.POD.plural:
        listing.pods = items
    else:
        kind = WorkloadKind.REPLICA_SET if resource == WorkloadKind.REPLICA_SET.plural else WorkloadKind.JOB
        for item in items:
            metadata = item.get("metadata") or {}
            listing.owners[metadata.get("uid", "")] = podspec.controller_of(metadata, kind)
            if tools := podspec.restart_tool_annotations(metadata.get("annotations") or {}):
                listing.owner_annotations[metadata.get("uid", "")] = tools
