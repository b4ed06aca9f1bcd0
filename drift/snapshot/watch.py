"""Every version, within seconds: the long-running watches of each cluster this process holds the lease of.

Per (cluster, resource) one thread (`cluster_watches` names them: ConfigMaps, Secrets, pods in
drift.snapshot.podwatch, and the probe planner): LIST (paginated) and record what it holds through the snapshot's
own recorder (drift.snapshot.recording), then WATCH from the LIST's resourceVersion with bookmarks, recording each
event as it comes. A 410 Gone relists, then replays from the oldest resourceVersion the API server still holds; a
broken connection, an API server that is down and a database that is down (PostgreSQL restarting: the event that
failed comes again) reconnect with a capped, jittered backoff and resume from the last resourceVersion recorded; a
watch that stays silent (no event, no bookmark) longer than `stall_seconds` is dropped and restarted.

A watch lasts 5 to 10 minutes (jittered, as client-go's reflector does, so that a cluster's watches do not reopen
in step): an idle cluster costs a few requests an hour, not three a minute. Nothing else rides on the watches'
reopening: the cluster's heartbeat has a clock of its own (`Heartbeat`, a thread beside the watches, which also ends
the open streams the moment the watches are told to stop or their lease's fence passes), and the lease is renewed by
the lease loop (drift.snapshot.leases). Where a source watch had recorded up to is kept in one place, the cluster's
lease row (`ClusterLease.resume_from`): whichever process holds the cluster next, a takeover or the same watcher
killed and started again, resumes there. Secret values are hashed in drift.snapshot.listing.listed_source as each
object is read and go no further. The periodic snapshot stays the reconciler, run rarely while the watcher is
alive."""

from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from drift import kube, verdicts
from drift.clusters import connect
from drift.hashing import current_hasher, previous_hashers
from drift.ignoring import is_ignored
from drift.kube.errors import first_line
from drift.models import Cluster
from drift.snapshot import leases, rekeying
from drift.snapshot.listing import Hashers, Listing, listed_source
from drift.snapshot.recording import record_source_event, record_sources
from drift.vocabulary import SourceKind

log = logging.getLogger(__name__)

WATCHED = {SourceKind.CONFIG_MAP: "/api/v1/configmaps", SourceKind.SECRET: "/api/v1/secrets"}
# Longer than the API server's bookmark period (one a minute on a quiet watch), so that a quiet watch is not taken
# for a stalled one.
DEFAULT_STALL_SECONDS = 90.0
# The API server ends each watch after a time in this range (seconds); the next one resumes where it stopped.
WATCH_TIMEOUT_RANGE = (300, 600)
HEARTBEAT_EVERY_SECONDS = 10.0
# The overview says a cluster's watcher is down when it has not heard from it for this long.
WATCHER_DOWN_AFTER_SECONDS = 180
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 30.0


def watch_timeout_seconds() -> int:
    """How long the next watch lasts: a random time in WATCH_TIMEOUT_RANGE."""
    return random.randint(*WATCH_TIMEOUT_RANGE)  # noqa: S311 -- spreading reopenings, not a secret


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


class ResourceWatch:
    """What every watch of one resource of one cluster shares: LIST then WATCH from the LIST's resourceVersion,
    relist on 410, reconnect with backoff, restart a stalled watch, say whether it is connected (for the
    heartbeat). A subclass (a dataclass with these fields) says what it watches (`label`), how it lists (`relist`)
    and follows a watch (`watch`, through `open_stream`). `run` returns when `stop` is set or the cluster is no
    longer registered."""

    cluster_id: int
    stop: threading.Event
    stall_seconds: float
    # Where the first watch starts; None: from a fresh LIST (a test sets an old one to meet a real 410).
    resume_from: str | None
    # What happened, for logs and tests: relists, watches opened, events recorded, 410s, stalls, errors.
    counts: dict[str, int]
    # The resourceVersion up to which every event is recorded: the lease keeps it, so that the next holder of the
    # cluster resumes there (drift.snapshot.leases).
    recorded_up_to: str
    # Whether its watch is open and nothing failed since (the Heartbeat beats only while every watch is).
    connected: bool
    # Whether the current watch brought anything (an event or a bookmark): a stall with nothing heard relists.
    heard: bool
    # Writes where a fresh list put it into the lease at once (drift.snapshot.leases.LeaseKeeper.keep_position);
    # None where no lease keeps one (the pods' watch, which always lists first; a watch run without leases).
    keep_position: Callable[[str, str], None] | None
    _stream: kube.WatchStream | None
    _stream_lock: threading.Lock

    @property
    def label(self) -> str:
        """What it watches, in words; also the key of its resume point in the cluster's lease."""
        raise NotImplementedError

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def run(self) -> None:
        backoff = Backoff()
        # Where the last holder of the cluster had recorded up to (a takeover, a restart): the API server replays
        # what changed since.
        resource_version, name = self.resume_from, f"#{self.cluster_id}"
        replay_from = ""  # after a 410: where the API server's watch cache starts, when it said
        try:
            while not self.stop.is_set():
                try:
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
                            if self.keep_position:
                                self.keep_position(self.label, resource_version)
                        self.heard = False
                        resource_version = self.watch(cluster, client, resource_version, backoff)
                    backoff.reset()
                except kube.Gone as gone:
                    self.connected = False
                    self.count("gone")
                    log.info("watch of %s %s: 410 Gone, relisting", name, self.label)
                    resource_version, replay_from = None, gone.oldest
                except kube.Stalled:
                    self.connected = False
                    self.count("stalled")
                    if not self.heard:
                        # Not an event, not a bookmark: a resourceVersion the API server has not reached (the
                        # cluster was rebuilt, etcd restored) is answered with silence until it gets there.
                        log.warning("watch of %s %s from resourceVersion %s heard nothing for %.0f s; relisting",
                                    name, self.label, resource_version, self.stall_seconds)  # fmt: skip
                        resource_version, replay_from = None, ""
                        continue
                    log.warning("watch of %s %s stalled for %.0f s; restarting", name, self.label, self.stall_seconds)
                except kube.KubeError as error:
                    self.connected = False
                    self.count("errors")
                    delay = backoff.next_delay()
                    log.warning("watch of %s %s: %s; again in %.1f s", name, self.label, error, delay)
                    self.stop.wait(delay)
                except DatabaseError as error:
                    # PostgreSQL restarting or unreachable: the event that failed is not recorded, so the position
                    # stays before it and the next watch, on a new connection, brings it again.
                    self.connected = False
                    self.count("database errors")
                    connection.close()
                    delay = backoff.next_delay()
                    log.warning("watch of %s %s: database: %s; again in %.1f s", name, self.label,
                                first_line(error), delay)  # fmt: skip
                    self.stop.wait(delay)
        finally:
            self.connected = False
            connection.close()  # this thread's own connection

    def save_position(self, resource_version: str) -> None:
        """Remember the resourceVersion up to which every event is recorded (a bookmark's too): the lease loop
        writes it into the lease row at its next renewal. A holder that resumes from an older one meets events
        recorded already: recording them again writes nothing."""
        self.recorded_up_to = resource_version or self.recorded_up_to
        self.heard = True

    def open_stream(self, client: kube.KubeClient, path: str, resource_version: str) -> kube.WatchStream:
        """Open the next watch, where `close_stream` (another thread) can end it."""
        self.count("watches")
        stream = client.watch(path, resource_version, f"watch {self.label}", self.stall_seconds,
                              watch_timeout_seconds())  # fmt: skip
        with self._stream_lock:
            self._stream = stream
            if self.stop.is_set():
                stream.close()  # told to stop while it opened: Heartbeat may have closed the streams already
        self.connected = True
        return stream

    def close_stream(self) -> None:
        """End the open watch now, from another thread (its blocking read returns)."""
        with self._stream_lock:
            if self._stream is not None:
                self._stream.close()

    def relist(self, cluster: Cluster, client: kube.KubeClient) -> str:
        """Record the full list of the resource and return its resourceVersion."""
        raise NotImplementedError

    def watch(self, cluster: Cluster, client: kube.KubeClient, resource_version: str, backoff: Backoff) -> str:
        """Follow one watch until the API server ends it; returns the resourceVersion to resume from."""
        raise NotImplementedError


@dataclass
class SourceWatch(ResourceWatch):
    """The watch of one resource (ConfigMaps or Secrets) of one cluster."""

    cluster_id: int
    kind: SourceKind
    stop: threading.Event
    stall_seconds: float = DEFAULT_STALL_SECONDS
    resume_from: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    recorded_up_to: str = ""
    connected: bool = False
    heard: bool = False
    keep_position: Callable[[str, str], None] | None = None
    _stream: kube.WatchStream | None = field(default=None, repr=False)
    _stream_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Called with (namespace, kind, name) after a new version was recorded (the probe planner: its volume
    # consumers may need a read).
    on_change: Callable[[str, str, str], None] | None = None
    # Called after it stored verdicts that changed (the notifier judges the notification rules again).
    on_judged: Callable[[], None] | None = None

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
        self.save_position(resource_version)
        return resource_version

    # -- WATCH --------------------------------------------------------------------------------------------

    def watch(self, cluster: Cluster, client: kube.KubeClient, resource_version: str, backoff: Backoff) -> str:
        """Follow one watch until the API server ends it; returns the resourceVersion to resume from."""
        hashers = self._hashers(cluster)
        for event in self.open_stream(client, self.path, resource_version):
            if self.stop.is_set():
                break
            resource_version = self.handle(cluster, event, hashers) or resource_version
            self.save_position(resource_version)
            backoff.reset()  # the API server answers again: a later outage starts from the first delay
        return resource_version

    def handle(self, cluster: Cluster, event: dict[str, Any], hashers: Hashers) -> str:
        """One watch event: record it; returns the resourceVersion it carries."""
        kind, obj = event["type"], event["object"]
        metadata = obj.get("metadata") or {}
        if kind in ("ADDED", "MODIFIED", "DELETED") and not self._ignored(cluster, obj):
            listed = listed_source(self.kind, obj, hashers)
            recorded = record_source_event(
                cluster, listed, timezone.now(), hashers.current.key_id, deleted=kind == "DELETED"
            )
            if recorded.rows:
                # The pods reading it may have turned stale (or missing) this moment: their stored verdicts too.
                judged = verdicts.source_changed(cluster, listed.namespace, listed.kind, listed.name)
                if self.on_change:
                    self.on_change(listed.namespace, listed.kind, listed.name)
                if judged and self.on_judged:
                    self.on_judged()
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


@dataclass
class Heartbeat:
    """The cluster's heartbeat (`Cluster.watch_heartbeat_at`: the overview's "watcher down", and snapshots becoming
    rare reconciles while it is recent) on a clock of its own: every HEARTBEAT_EVERY_SECONDS while every watch of
    the cluster is connected, rather than at each watch's reopening. A connection that went silent counts as
    connected until its stall limit ends it.

    It is also what ends the open watch streams once the watches are to stop (`stop` set, or the lease's fence
    passed: a holder that could not renew stops its watches before the lease's deadline): a watch waits for its
    next event in a blocking read, which on a quiet cluster lasts until the next bookmark."""

    cluster_id: int
    stop: threading.Event
    watches: list[ResourceWatch]
    counts: dict[str, int] = field(default_factory=dict)

    def run(self) -> None:
        last_beat: float | None = None
        try:
            # Checked every second, so that the first beat comes as soon as every watch is open.
            while not self.stop.wait(1.0):
                moment = time.monotonic()
                due = last_beat is None or moment - last_beat >= HEARTBEAT_EVERY_SECONDS
                if due and all(watch.connected for watch in self.watches):
                    last_beat = moment
                    self.beat()
        finally:
            for watch in self.watches:
                watch.close_stream()
            connection.close()  # this thread's own connection

    def beat(self) -> None:
        try:
            if not Cluster.objects.filter(pk=self.cluster_id).update(watch_heartbeat_at=timezone.now()):
                self.stop.set()  # the cluster was removed
                return
        except DatabaseError as error:
            # PostgreSQL restarting: no heartbeat until it is back (the watches wait for it too).
            self.counts["database errors"] = self.counts.get("database errors", 0) + 1
            log.warning("heartbeat of cluster %s: database: %s", self.cluster_id, first_line(error))
            connection.close()
            return
        self.counts["beats"] = self.counts.get("beats", 0) + 1


# A stale rule's minutes and a reminder's interval pass on the clock, with no event: the rules are judged this often
# too (snapshots, which judged them before, are rare reconciles while the watcher runs).
NOTIFY_AT_LEAST_EVERY_SECONDS = 60.0


@dataclass
class Notifier:
    """The notification rules of a cluster judged while the watcher keeps its verdicts: soon after the watches
    stored verdicts that changed (a ConfigMap edit makes its consumers stale: the notice goes out within seconds,
    not at the next reconcile), at most once every snapshot interval of the cluster however many events come, and
    every NOTIFY_AT_LEAST_EVERY_SECONDS otherwise. The rules are judged by the worker (drift.tasks.
    evaluate_notifications, the task a snapshot sends), so that nothing they do holds up a watch."""

    cluster_id: int
    stop: threading.Event
    counts: dict[str, int] = field(default_factory=dict)
    _woken: threading.Event = field(default_factory=threading.Event)

    def wake(self) -> None:
        self._woken.set()

    def run(self) -> None:
        last = -math.inf  # when the rules were last judged (time.monotonic())
        try:
            while not self.stop.is_set():
                woken = self._woken.wait(timeout=1.0)
                if self.stop.is_set():
                    break
                since = time.monotonic() - last
                if woken:
                    interval = self._snapshot_interval()
                    if interval is None:
                        return  # the cluster was removed
                    # Judged a moment ago: once more when the interval has passed, for this whole burst.
                    if since < interval and self.stop.wait(interval - since):
                        break
                elif since < NOTIFY_AT_LEAST_EVERY_SECONDS:
                    continue
                self._woken.clear()
                last = time.monotonic()
                self.send()
        finally:
            connection.close()  # this thread's own connection

    def _snapshot_interval(self) -> float | None:
        while not self.stop.is_set():
            try:
                found = Cluster.objects.filter(pk=self.cluster_id).values_list("snapshot_interval_seconds", flat=True)
                interval = found.first()
                return None if interval is None else float(interval)
            except DatabaseError as error:  # PostgreSQL restarting: ask again
                log.warning("notifications of cluster %s: database: %s", self.cluster_id, first_line(error))
                connection.close()
                self.stop.wait(BACKOFF_CAP)
        return 0.0

    def send(self) -> None:
        from drift.tasks import evaluate_notifications

        try:
            evaluate_notifications.delay(self.cluster_id)
            self.counts["evaluations"] = self.counts.get("evaluations", 0) + 1
        except Exception as error:  # the broker is down: the next one asks again
            log.warning("notifications of cluster %s not evaluated: %s", self.cluster_id, type(error).__name__)


class Watch(Protocol):
    """What watch_clusters starts per cluster, each in a thread of its own."""

    stop: threading.Event
    counts: dict[str, int]

    def run(self) -> None: ...


def cluster_watches(
    cluster_id: int,
    stop: threading.Event,
    stall_seconds: float = DEFAULT_STALL_SECONDS,
    resume_from: dict[str, str] | None = None,
    keep_position: Callable[[str, str], None] | None = None,
) -> dict[str, Watch]:
    """Every watch of one cluster, by name: the one place that says what the watcher follows. A cluster read in
    namespaced mode (a Role per namespace) has one watch of each kind per namespace. The ConfigMaps' and Secrets'
    watches resume from what the cluster's lease kept (`resume_from`, by label); the pods' always list first,
    since their owners and nodes are learnt from that list. Beside them: the probe planner and the heartbeat."""
    # podwatch builds on this module's ResourceWatch, so it is imported here rather than at the top.
    from drift.snapshot.podwatch import ClusterState, PodWatch, ProbePlanner

    kept = resume_from or {}
    cluster = Cluster.objects.get(pk=cluster_id)
    state = ClusterState()
    notifier = Notifier(cluster_id, stop)
    planner = ProbePlanner(cluster_id, stop, state, on_judged=notifier.wake)
    watches: dict[str, Watch] = {}
    for namespace in cluster.namespaces or [""]:
        for kind in WATCHED:
            sources = SourceWatch(cluster_id, kind, stop, stall_seconds, on_change=planner.wake_for_source,
                                  namespace=namespace, on_judged=notifier.wake)  # fmt: skip
            sources.resume_from, sources.keep_position = kept.get(sources.label), keep_position
            watches[sources.label] = sources
        pods = PodWatch(cluster_id, stop, stall_seconds=stall_seconds, state=state, planner=planner,
                        on_judged=notifier.wake, namespace=namespace)  # fmt: skip
        watches[pods.label] = pods
    api_watches = [watch for watch in watches.values() if isinstance(watch, ResourceWatch)]
    watches["probes"] = planner
    watches["heartbeat"] = Heartbeat(cluster_id, stop, api_watches)
    watches["notifications"] = notifier
    return watches


@dataclass
class _HeldCluster:
    """The running watches of one cluster this process holds."""

    name: str
    watches: dict[str, Watch]
    threads: dict[str, threading.Thread] = field(default_factory=dict)

    def start(self) -> None:
        self.threads = {label: self._thread(label, watch) for label, watch in self.watches.items()}

    def restart_the_ended(self) -> None:
        """A watch whose thread ended (an error it did not survive, or its fence passed before a late renewal)
        starts again from where it had recorded up to."""
        for label, watch in self.watches.items():
            if not self.threads[label].is_alive() and not watch.stop.is_set():
                if isinstance(watch, ResourceWatch) and not isinstance(watch, _relisting()):
                    watch.resume_from = watch.recorded_up_to or None
                self.threads[label] = self._thread(label, watch)

    def checkpoint(self) -> dict[str, str]:
        """What the lease keeps: per source watch, the resourceVersion up to which it recorded everything."""
        return {
            label: watch.recorded_up_to
            for label, watch in self.watches.items()
            if isinstance(watch, SourceWatch) and watch.recorded_up_to
        }

    def join(self, timeout: float) -> None:
        for thread in self.threads.values():
            thread.join(timeout=timeout)

    def _thread(self, label: str, watch: Watch) -> threading.Thread:
        thread = threading.Thread(target=watch.run, name=f"watch-{self.name}-{label}", daemon=True)
        thread.start()
        return thread


def _relisting() -> type:
    """The watches that always start from a LIST (pods: their owners and nodes are learnt from it)."""
    from drift.snapshot.podwatch import PodWatch

    return PodWatch


def watch_clusters(
    stop: threading.Event,
    cluster_name: str = "",
    stall_seconds: float = DEFAULT_STALL_SECONDS,
    lease_seconds: float = leases.DEFAULT_LEASE_SECONDS,
) -> None:
    """Watch the clusters this process holds the lease of (one cluster's, or its share of every registered
    cluster's, picking up clusters added later and those another process gave back or stopped renewing), until
    `stop`; then give the leases back. A cluster's watches share what they learn (owners, nodes, the probe
    planner): they start and stop together."""
    keeper = leases.LeaseKeeper(leases.Holder.this_process(), lease_seconds, cluster_name)
    held: dict[int, _HeldCluster] = {}
    log.info("watcher %s started", keeper.holder)
    try:
        while not stop.is_set():
            try:
                change = keeper.take_round({pk: running.checkpoint() for pk, running in held.items()})
                for cluster_id in change.lost:
                    if cluster_id in held:
                        log.info("stopped watching cluster %s", held.pop(cluster_id).name)
                names = dict(Cluster.objects.filter(pk__in=change.gained).values_list("pk", "name"))
                for cluster_id, resume_from in change.gained.items():
                    name = names.get(cluster_id, str(cluster_id))
                    watches = cluster_watches(cluster_id, keeper.fence(cluster_id), stall_seconds, resume_from,
                                              functools.partial(keeper.keep_position, cluster_id))  # fmt: skip
                    running = _HeldCluster(name, watches)
                    running.start()
                    held[cluster_id] = running
                    log.info("watching cluster %s (resuming from %s)", name, resume_from or "a fresh list")
            except DatabaseError as error:
                # PostgreSQL restarting: the fences run out by themselves if this lasts (no lease, no recording);
                # a cluster gained but not yet started is started by the round that follows.
                log.warning("lease round failed: database: %s", first_line(error))
                connection.close()
                stop.wait(keeper.renew_every)
                continue
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
            log.warning("could not give the leases back (they expire by themselves): %s", first_line(error))
