"""Every version, within seconds: a long-running watch of each cluster's ConfigMaps and Secrets.

Per (cluster, resource) one thread: LIST (paginated) and record what it holds through the snapshot's own
recorder (drift.snapshot.recording), then WATCH from the LIST's resourceVersion with bookmarks, recording
each event as it comes. A 410 Gone (the resourceVersion was compacted away) relists; a broken connection or
an API server that is down reconnects with a capped, jittered backoff and resumes from the last
resourceVersion seen; a watch that stays silent (no event, no bookmark) longer than `stall_seconds` is
dropped and restarted. Secret values are hashed in drift.snapshot.listing.listed_source as each object is
read and go no further. The periodic snapshot stays the reconciler: when this process is down, only the
versions in between are missed, and the overview says so (Cluster.watch_heartbeat_at)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import close_old_connections, connection
from django.utils import timezone

from drift import kube, verdicts
from drift.clusters import connect
from drift.hashing import current_hasher, previous_hashers
from drift.ignoring import is_ignored
from drift.models import Cluster
from drift.snapshot import rekeying
from drift.snapshot.listing import Hashers, Listing, listed_source
from drift.snapshot.recording import record_source_event, record_sources
from drift.vocabulary import SourceKind

log = logging.getLogger(__name__)

WATCHED = {SourceKind.CONFIG_MAP: "/api/v1/configmaps", SourceKind.SECRET: "/api/v1/secrets"}
DEFAULT_STALL_SECONDS = 90.0
# The API server ends each watch after this long; the next one resumes where it stopped. Shorter than the
# overview's "watcher down" threshold, so a quiet cluster still refreshes the heartbeat.
WATCH_TIMEOUT_SECONDS = 60
HEARTBEAT_EVERY_SECONDS = 10.0
# The overview says a cluster's watcher is down when it has not heard from it for this long.
WATCHER_DOWN_AFTER_SECONDS = 180
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 30.0


@dataclass
class Backoff:
    """1, 2, 4 ... seconds, at most BACKOFF_CAP, with jitter so that many watchers do not retry in step."""

    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(BACKOFF_CAP, BACKOFF_FIRST * 2**self.attempt)
        self.attempt += 1
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 -- jitter, not a secret

    def reset(self) -> None:
        self.attempt = 0


class ResourceWatch:
    """What every watch of one resource of one cluster shares: LIST then WATCH from the LIST's resourceVersion,
    relist on 410, reconnect with backoff, restart a stalled watch, heartbeat. A subclass (a dataclass with
    these fields) says what it watches (`label`), how it lists (`relist`) and follows a watch (`watch`). `run`
    returns when `stop` is set or the cluster is no longer registered."""

    cluster_id: int
    stop: threading.Event
    stall_seconds: float
    # Where the first watch starts; None: from a fresh LIST (a test sets an old one to meet a real 410).
    resume_from: str | None
    # What happened, for logs and tests: relists, watches opened, events recorded, 410s, stalls, errors.
    counts: dict[str, int]
    _last_heartbeat: float

    @property
    def label(self) -> str:
        raise NotImplementedError

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def run(self) -> None:
        backoff = Backoff()
        resource_version = self.resume_from
        try:
            while not self.stop.is_set():
                cluster = Cluster.objects.filter(pk=self.cluster_id).first()
                if cluster is None:
                    return
                try:
                    with connect(cluster) as client:
                        if resource_version is None:
                            resource_version = self.relist(cluster, client)
                        resource_version = self.watch(cluster, client, resource_version)
                    backoff.reset()
                except kube.Gone:
                    self.count("gone")
                    log.info("watch of %s %s: 410 Gone, relisting", cluster.name, self.label)
                    resource_version = None
                except kube.Stalled:
                    self.count("stalled")
                    log.warning(
                        "watch of %s %s stalled for %.0f s; restarting", cluster.name, self.label, self.stall_seconds
                    )
                except kube.KubeError as error:
                    self.count("errors")
                    delay = backoff.next_delay()
                    log.warning("watch of %s %s: %s; again in %.1f s", cluster.name, self.label, error, delay)
                    self.stop.wait(delay)
        finally:
            connection.close()  # this thread's own connection

    def relist(self, cluster: Cluster, client: kube.KubeClient) -> str:
        """Record the full list of the resource and return its resourceVersion."""
        raise NotImplementedError

    def watch(self, cluster: Cluster, client: kube.KubeClient, resource_version: str) -> str:
        raise NotImplementedError

    def heartbeat(self, force: bool = False) -> None:
        now = timezone.now()
        moment = now.timestamp()
        if force or moment - self._last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
            self._last_heartbeat = moment
            if not Cluster.objects.filter(pk=self.cluster_id).update(watch_heartbeat_at=now):
                self.stop.set()  # the cluster was removed


@dataclass
class SourceWatch(ResourceWatch):
    """The watch of one resource (ConfigMaps or Secrets) of one cluster."""

    cluster_id: int
    kind: SourceKind
    stop: threading.Event
    stall_seconds: float = DEFAULT_STALL_SECONDS
    resume_from: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    _last_heartbeat: float = 0.0
    # Called after a new version was recorded (the probe planner: volume consumers may need a read).
    on_change: Callable[[], None] | None = None

    # A cluster in namespaced mode (a Role per namespace, no cluster-wide list): one watch per namespace.
    namespace: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind.plural} in {self.namespace}" if self.namespace else self.kind.plural

    @property
    def path(self) -> str:
        if not self.namespace:
            return WATCHED[self.kind]
        return WATCHED[self.kind].replace("/v1/", f"/v1/namespaces/{kube.validate_namespace(self.namespace)}/", 1)

    # -- LIST ---------------------------------------------------------------------------------------------

    def relist(self, cluster: Cluster, client: kube.KubeClient) -> str:
        """Record the full list of the resource and return its resourceVersion."""
        self.count("relists")
        started = timezone.now()
        hashers = self._hashers(cluster)
        listing = Listing(ignored_patterns=tuple(cluster.ignored_config_maps), started_at=started)
        # Only this resource was read: the other one's sources are neither seen nor gone.
        scope: set[str] | None = {self.namespace} if self.namespace else None
        listing.complete = {kind.plural: (scope if kind == self.kind else set()) for kind in SourceKind}
        token, resource_version = "", ""
        while True:
            page = client.list_page(self.path, f"list {self.label}", token)
            for item in page.get("items") or []:
                if not self._ignored(cluster, item):
                    listing.sources.append(listed_source(self.kind, item, hashers))
            metadata = page.get("metadata") or {}
            resource_version = metadata.get("resourceVersion") or resource_version
            token = metadata.get("continue") or ""
            if not token:
                break
        if record_sources(cluster, listing, timezone.now(), hashers.current.key_id).rows:
            verdicts.facts_changed(cluster)
        self.heartbeat(force=True)
        return resource_version

    # -- WATCH --------------------------------------------------------------------------------------------

    def watch(self, cluster: Cluster, client: kube.KubeClient, resource_version: str) -> str:
        """Follow one watch until the API server ends it; returns the resourceVersion to resume from."""
        self.count("watches")
        hashers = self._hashers(cluster)
        events = client.watch(
            self.path, resource_version, f"watch {self.label}", self.stall_seconds, WATCH_TIMEOUT_SECONDS
        )
        self.heartbeat(force=True)
        for event in events:
            if self.stop.is_set():
                break
            resource_version = self.handle(cluster, event, hashers) or resource_version
        return resource_version

    def handle(self, cluster: Cluster, event: dict[str, Any], hashers: Hashers) -> str:
        """One watch event: record it; returns the resourceVersion it carries."""
        self.heartbeat()
        kind, obj = event["type"], event["object"]
        metadata = obj.get("metadata") or {}
        if kind in ("ADDED", "MODIFIED", "DELETED") and not self._ignored(cluster, obj):
            listed = listed_source(self.kind, obj, hashers)
            recorded = record_source_event(
                cluster, listed, timezone.now(), hashers.current.key_id, deleted=kind == "DELETED"
            )
            if recorded.rows:
                # The pods reading it may have turned stale (or missing) this moment: their stored verdicts too.
                verdicts.source_changed(cluster, listed.namespace, listed.kind, listed.name)
                if self.on_change:
                    self.on_change()
            self.count("events")
        return str(metadata.get("resourceVersion") or "")

    def _ignored(self, cluster: Cluster, item: dict[str, Any]) -> bool:
        metadata = item.get("metadata") or {}
        return self.kind == SourceKind.CONFIG_MAP and is_ignored(
            cluster.ignored_config_maps, metadata.get("namespace", ""), metadata.get("name", "")
        )

    @staticmethod
    def _hashers(cluster: Cluster) -> Hashers:
        """As the snapshot hashes: the current key, plus previous keys still found in stored versions (so that a
        rotation is not seen as every source changing; the snapshot re-keys what is stored)."""
        current = current_hasher()
        known = previous_hashers()
        stored = rekeying.stored_key_ids(cluster, current.key_id)
        return Hashers(current, tuple(known[key_id] for key_id in sorted(stored) if key_id in known))


class Watch(Protocol):
    """What watch_clusters starts per cluster, each in a thread of its own."""

    counts: dict[str, int]

    def run(self) -> None: ...


def cluster_watches(
    cluster_id: int, stop: threading.Event, stall_seconds: float = DEFAULT_STALL_SECONDS
) -> dict[str, Watch]:
    """Every watch of one cluster, by name: the one place that says what the watcher follows. A cluster read in
    namespaced mode (a Role per namespace) has one watch of each kind per namespace."""
    # podwatch builds on this module's ResourceWatch, so it is imported here rather than at the top.
    from drift.snapshot.podwatch import ClusterState, PodWatch, ProbePlanner

    cluster = Cluster.objects.get(pk=cluster_id)
    state = ClusterState()
    planner = ProbePlanner(cluster_id, stop, state)
    watches: dict[str, Watch] = {}
    for namespace in cluster.namespaces or [""]:
        for kind in WATCHED:
            sources = SourceWatch(cluster_id, kind, stop, stall_seconds, on_change=planner.wake, namespace=namespace)
            watches[sources.label] = sources
        pods = PodWatch(
            cluster_id, stop, stall_seconds=stall_seconds, state=state, planner=planner, namespace=namespace
        )
        watches[pods.label] = pods
    watches["probes"] = planner
    return watches


def watch_clusters(
    stop: threading.Event, cluster_name: str = "", stall_seconds: float = DEFAULT_STALL_SECONDS, rescan: float = 30
) -> None:
    """Watch one cluster, or every registered cluster (picking up clusters added later), until `stop`."""
    threads: dict[int, list[threading.Thread]] = {}
    while not stop.is_set():
        clusters = Cluster.objects.filter(name=cluster_name) if cluster_name else Cluster.objects.all()
        for cluster in clusters:
            if any(thread.is_alive() for thread in threads.get(cluster.pk, [])):
                continue
            # The watches of a cluster share what they learn (owners, nodes, the probe planner): started together.
            threads[cluster.pk] = []
            for name, watcher in cluster_watches(cluster.pk, stop, stall_seconds).items():
                thread = threading.Thread(target=watcher.run, name=f"watch-{cluster.name}-{name}", daemon=True)
                thread.start()
                threads[cluster.pk].append(thread)
                log.info("watching %s of cluster %s", name, cluster.name)
        close_old_connections()
        stop.wait(rescan)
    for started in threads.values():
        for thread in started:
            thread.join(timeout=1)
