"""Every version, within seconds: a long-running watch of each cluster's ConfigMaps and Secrets.

Per (cluster, resource) one thread: LIST (paginated) and record what it holds through the snapshot's own
recorder (drift.snapshot.recording), then WATCH from the LIST's resourceVersion with bookmarks, recording
each event as it comes. A 410 Gone (the resourceVersion was compacted away) relists; a broken connection or
an API server that is down reconnects with a capped, jittered backoff and resumes from the last
resourceVersion seen, and so is a database that is down (PostgreSQL restarting: the event that failed comes
again); a watch that stays silent (no event, no bookmark) longer than `stall_seconds` is
dropped and restarted. Secret values are hashed in drift.snapshot.listing.listed_source as each object is
read and go no further. The periodic snapshot stays the reconciler: when this process is down, only the
versions in between are missed, and the overview says so (Cluster.watch_heartbeat_at)."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from drift import kube, verdicts
from drift.clusters import connect
from drift.hashing import current_hasher, previous_hashers
from drift.ignoring import is_ignored
from drift.kube.errors import first_line
from drift.models import Cluster, WatchPosition
from drift.snapshot import leases, rekeying
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
POSITION_EVERY_SECONDS = 1.0
# The overview says a cluster's watcher is down when it has not heard from it for this long.
WATCHER_DOWN_AFTER_SECONDS = 180
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 30.0


def _older(first: str, second: str) -> bool:
    """resourceVersions are opaque; compared only when both are plain numbers (etcd revisions), as every API
    server we know gives them."""
    return first.isdigit() and second.isdigit() and int(first) < int(second)


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


@dataclass
class SourceWatch:
    """The watch of one resource (ConfigMaps or Secrets) of one cluster. `run` returns when `stop` is set
    or the cluster is no longer registered."""

    cluster_id: int
    kind: SourceKind
    stop: threading.Event
    stall_seconds: float = DEFAULT_STALL_SECONDS
    # Where the first watch starts; None: from a fresh LIST (a test sets an old one to meet a real 410).
    resume_from: str | None = None
    # What happened, for logs and tests: relists, watches opened, events recorded, 410s, stalls, errors.
    counts: dict[str, int] = field(default_factory=dict)
    # The resourceVersion up to which every event is recorded: the lease keeps it, so that the next holder of the
    # cluster resumes there (drift.snapshot.leases).
    recorded_up_to: str = ""
    _last_heartbeat: float = 0.0
    _last_position: float = 0.0

    @property
    def resource(self) -> str:
        return self.kind.plural

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def run(self) -> None:
        backoff = Backoff()
        resource_version = self.resume_from
        positioned, name = resource_version is not None, f"#{self.cluster_id}"
        replay_from = ""  # after a 410: where the API server's watch cache starts, when it said
        try:
            while not self.stop.is_set():
                try:
                    if not positioned:
                        # Where this resource's watcher stopped last (a kill, a restart): the API server replays
                        # what changed since.
                        resource_version, positioned = self.saved_position(), True
                    cluster = Cluster.objects.filter(pk=self.cluster_id).first()
                    if cluster is None:
                        return
                    name = cluster.name
                    with connect(cluster) as client:
                        if resource_version is None:
                            resource_version = self.relist(cluster, client)
                            if _older(replay_from, resource_version):
                                # The versions between the API server's oldest and the listing are in its watch
                                # cache still: the watch brings them, and each takes its place in the timeline.
                                resource_version = replay_from
                            replay_from = ""
                            self.recorded_up_to = resource_version
                        resource_version = self.watch(cluster, client, resource_version, backoff)
                    backoff.reset()
                except kube.Gone as gone:
                    self.count("gone")
                    log.info("watch of %s %s: 410 Gone, relisting", name, self.kind.plural)
                    resource_version, replay_from = None, gone.oldest
                except kube.Stalled:
                    self.count("stalled")
                    log.warning(
                        "watch of %s %s stalled for %.0f s; restarting",
                        name,
                        self.kind.plural,
                        self.stall_seconds,
                    )
                except kube.KubeError as error:
                    self.count("errors")
                    delay = backoff.next_delay()
                    log.warning("watch of %s %s: %s; again in %.1f s", name, self.kind.plural, error, delay)
                    self.stop.wait(delay)
                except DatabaseError as error:
                    # PostgreSQL restarting or unreachable: the event that failed is not recorded, so the position
                    # stays before it and the next watch, on a new connection, brings it again.
                    self.count("database errors")
                    connection.close()
                    delay = backoff.next_delay()
                    log.warning("watch of %s %s: database: %s; again in %.1f s", name, self.kind.plural,
                                first_line(error), delay)  # fmt: skip
                    self.stop.wait(delay)
        finally:
            connection.close()  # this thread's own connection

    # -- LIST ---------------------------------------------------------------------------------------------

    def relist(self, cluster: Cluster, client: kube.KubeClient) -> str:
        """Record the full list of the resource and return its resourceVersion."""
        self.count("relists")
        started = timezone.now()
        hashers = self._hashers(cluster)
        listing = Listing(ignored_patterns=tuple(cluster.ignored_config_maps), started_at=started)
        # Only this resource was read: the other one's sources are neither seen nor gone.
        listing.complete = {kind.plural: (None if kind == self.kind else set()) for kind in SourceKind}
        token, resource_version = "", ""
        while True:
            page = client.list_page(WATCHED[self.kind], f"list {self.kind.plural}", token)
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
        self.save_position(resource_version, force=True)
        return resource_version

    # -- WATCH --------------------------------------------------------------------------------------------

    def watch(
        self, cluster: Cluster, client: kube.KubeClient, resource_version: str, backoff: Backoff | None = None
    ) -> str:
        """Follow one watch until the API server ends it; returns the resourceVersion to resume from."""
        self.count("watches")
        hashers = self._hashers(cluster)
        events = client.watch(
            WATCHED[self.kind], resource_version, f"watch {self.kind.plural}", self.stall_seconds, WATCH_TIMEOUT_SECONDS
        )
        self.heartbeat(force=True)
        for event in events:
            if self.stop.is_set():
                break
            resource_version = self.handle(cluster, event, hashers) or resource_version
            self.recorded_up_to = resource_version
            self.save_position(resource_version)
            if backoff is not None:
                backoff.reset()  # the API server answers again: a later outage starts from the first delay
        self.save_position(resource_version, force=True)
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
            self.count("events")
        return str(metadata.get("resourceVersion") or "")

    def heartbeat(self, force: bool = False) -> None:
        now = timezone.now()
        moment = now.timestamp()
        if force or moment - self._last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
            self._last_heartbeat = moment
            if not Cluster.objects.filter(pk=self.cluster_id).update(watch_heartbeat_at=now):
                self.stop.set()  # the cluster was removed

    def saved_position(self) -> str | None:
        return (
            WatchPosition.objects.filter(cluster_id=self.cluster_id, kind=self.kind)
            .values_list("resource_version", flat=True)
            .first()
        )

    def save_position(self, resource_version: str, force: bool = False) -> None:
        """Remember, at most every POSITION_EVERY_SECONDS, the resourceVersion up to which every event is recorded
        (a bookmark's too). A watcher that resumes from an older one meets events it recorded already: recording
        them again writes nothing."""
        moment = time.monotonic()
        if not resource_version or (not force and moment - self._last_position < POSITION_EVERY_SECONDS):
            return
        self._last_position = moment
        WatchPosition.objects.update_or_create(
            cluster_id=self.cluster_id,
            kind=self.kind,
            defaults={"resource_version": resource_version, "saved_at": timezone.now()},
        )

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


def cluster_watches(
    cluster_id: int, stop: threading.Event, stall_seconds: float, resume_from: dict[str, str]
) -> list[SourceWatch]:
    """Every watch the holder of a cluster's lease runs, each resuming from the resourceVersion the lease kept for
    its resource (none: a fresh LIST)."""
    return [
        SourceWatch(cluster_id, kind, stop, stall_seconds=stall_seconds, resume_from=resume_from.get(kind.plural))
        for kind in WATCHED
    ]


@dataclass
class _HeldCluster:
    """The running watches of one cluster this process holds."""

    name: str
    watches: list[SourceWatch]
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [self._thread(watch) for watch in self.watches]

    def restart_the_ended(self) -> None:
        """A watch whose thread ended (an error it did not survive, or its fence passed before a late renewal)
        starts again from where it had recorded up to."""
        for index, (watch, thread) in enumerate(zip(self.watches, self.threads, strict=True)):
            if not thread.is_alive() and not watch.stop.is_set():
                watch.resume_from = watch.recorded_up_to or None
                self.threads[index] = self._thread(watch)

    def checkpoint(self) -> dict[str, str]:
        return {watch.resource: watch.recorded_up_to for watch in self.watches if watch.recorded_up_to}

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout=timeout)

    def _thread(self, watch: SourceWatch) -> threading.Thread:
        thread = threading.Thread(target=watch.run, name=f"watch-{self.name}-{watch.resource}", daemon=True)
        thread.start()
        return thread


def watch_clusters(
    stop: threading.Event,
    cluster_name: str = "",
    stall_seconds: float = DEFAULT_STALL_SECONDS,
    lease_seconds: float = leases.DEFAULT_LEASE_SECONDS,
) -> None:
    """Watch the clusters this process holds the lease of (one cluster's, or its share of every registered
    cluster's, picking up clusters added later and those another process gave back or stopped renewing), until
    `stop`; then give the leases back."""
    keeper = leases.LeaseKeeper(leases.Holder.this_process(), lease_seconds, cluster_name)
    held: dict[int, _HeldCluster] = {}
    log.info("watcher %s started", keeper.holder)
    try:
        while not stop.is_set():
            try:
                change = keeper.take_round({pk: running.checkpoint() for pk, running in held.items()})
            except DatabaseError as error:
                # The fences run out by themselves if this lasts: no lease, no recording.
                log.warning("lease round failed: database: %s", first_line(error))
                connection.close()
                stop.wait(keeper.renew_every)
                continue
            for cluster_id in change.lost:
                if cluster_id in held:
                    log.info("stopped watching cluster %s", held.pop(cluster_id).name)
            try:
                names = dict(Cluster.objects.filter(pk__in=change.gained).values_list("pk", "name"))
            except DatabaseError:
                names = {}  # names are for the logs only: PostgreSQL restarting must not end the process
                connection.close()
            for cluster_id, resume_from in change.gained.items():
                fence = keeper.fence(cluster_id)
                name = names.get(cluster_id, str(cluster_id))
                running = _HeldCluster(name, cluster_watches(cluster_id, fence, stall_seconds, resume_from))
                running.start()
                held[cluster_id] = running
                log.info("watching cluster %s (resuming from %s)", name, resume_from or "a fresh list")
            for running in held.values():
                running.restart_the_ended()
            close_old_connections()
            stop.wait(keeper.renew_every)
    finally:
        for cluster_id in keeper.held:
            keeper.fence(cluster_id).set()
        for running in held.values():
            running.join(timeout=1)
        try:
            keeper.release_all({pk: running.checkpoint() for pk, running in held.items()})
        except DatabaseError as error:
            log.warning("could not give the leases back (they expire by themselves): %s", error)
