"""Watch what is judged: the pods of one cluster, followed like its ConfigMaps and Secrets (drift.snapshot.watch),
and the exec probes their events call for.

`PodWatch` LISTs the pods' owners (ReplicaSets, Jobs), the nodes and the pods once, records the pods as a
snapshot does (drift.snapshot.recording.record_pods), then WATCHes pods from the LIST's resourceVersion with
bookmarks. Each event is recorded through the snapshot's own code (record_pod_event): a new pod with its
workload, new container runs with what they consume, runs that stopped, a pod being deleted (terminating), a
pod gone. Then the workload's verdicts are stored again (drift.verdicts.workloads_changed), so a pod started,
replaced or deleted is judged within seconds, without a cycle.

`ProbePlanner` execs into containers when an event calls for it, not by scanning every cycle: a new container
run (its env is read once), a new version of a source (its volume consumers are read while the kubelet may
still be rewriting them, until the propagation window has passed). It runs the cycle's own planner
(drift.snapshot.probing.plan_probes), which only ever picks unobserved consumptions and recently changed
volumes, so it costs nothing when nothing happened, and it sleeps then."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from drift import kube, podspec, verdicts
from drift.clusters import connect
from drift.hashing import current_hasher
from drift.models import Cluster, Consumption, Observation, SourceVersion
from drift.snapshot.listing import LISTED_RESOURCES, SIMULATED_NODE_ANNOTATION, Listing
from drift.snapshot.probing import RECENT_CHANGE_MARGIN, consumer_pods, observations_from, plan_probes, run_probes
from drift.snapshot.recording import record_pod_event, record_pods
from drift.snapshot.watch import DEFAULT_STALL_SECONDS, Backoff, ResourceWatch
from drift.vocabulary import WorkloadKind

log = logging.getLogger(__name__)

PODS = LISTED_RESOURCES[WorkloadKind.POD.plural]
OWNER_RESOURCES = {
    WorkloadKind.REPLICA_SET: LISTED_RESOURCES[WorkloadKind.REPLICA_SET.plural],
    WorkloadKind.JOB: LISTED_RESOURCES[WorkloadKind.JOB.plural],
}
# Events come in bursts (a rollout, a scale-up): one planning pass for a burst, this long after its first event.
PROBE_DEBOUNCE_SECONDS = 0.3


@dataclass
class ClusterState:
    """What one cluster's pod events need beyond the pod itself, shared by its watches: the pods' owners and
    their restart-tool annotations, which nodes are simulated, the ignored ConfigMaps. Kept as a Listing, the
    snapshot's own shape, so that the recording code reads it as it reads a cycle's."""

    listing: Listing = field(default_factory=Listing)
    known_nodes: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class ProbePlanner:
    """Exec probes planned from events (`wake`), run for one cluster in a thread of their own so that a slow exec
    never holds up the pod events."""

    cluster_id: int
    stop: threading.Event
    state: ClusterState
    counts: dict[str, int] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event)
    # The pods whose new container runs woke the planner; None: the whole cluster (a relist, a recheck).
    _pods: set[int] | None = field(default_factory=set)
    # Sources with a new version, as (namespace, kind, name): their consumers' pods are planned (not the cluster's).
    _sources: set[tuple[str, str, str]] = field(default_factory=set)
    _pods_lock: threading.Lock = field(default_factory=threading.Lock)
    # Called after it stored verdicts that changed (the notifier judges the notification rules again).
    on_judged: Callable[[], None] | None = None

    def wake(self, pod_id: int | None = None) -> None:
        """Plan probes soon: for one pod's new containers, or (no pod) for the whole cluster."""
        with self._pods_lock:
            if pod_id is None:
                self._pods = None
            elif self._pods is not None:
                self._pods.add(pod_id)
        self._wake.set()

    def wake_for_source(self, namespace: str, kind: str, name: str) -> None:
        """A source has a new version: plan probes soon for the pods that consume it (their volumes may need a
        read). Planning the whole cluster for every edit re-read every running consumption's last observation:
        at 5,000 pods, ten registrations edited every 10 s kept PostgreSQL busy on it without end."""
        with self._pods_lock:
            self._sources.add((namespace, kind, name))
        self._wake.set()

    def take_pending(self, whole: bool) -> set[int] | None:
        """The pods the next pass plans (None: the whole cluster), and nothing pending after it."""
        with self._pods_lock:
            pods, self._pods = (None if whole else self._pods), set()
            sources, self._sources = self._sources, set()
        if pods is not None and sources:
            pods |= consumer_pods(self.cluster_id, sources)
        return pods

    def count(self, what: str, by: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + by

    def run(self) -> None:
        recheck_at: float | None = None
        try:
            while not self.stop.is_set():
                woken = self._wake.wait(timeout=1.0)
                now = timezone.now()
                if not woken and (recheck_at is None or now.timestamp() < recheck_at):
                    continue
                self.stop.wait(PROBE_DEBOUNCE_SECONDS)
                self._wake.clear()
                # A recheck that came due (volumes in their window) plans the whole cluster.
                pods = self.take_pending(whole=recheck_at is not None and now.timestamp() >= recheck_at)
                cluster = Cluster.objects.filter(pk=self.cluster_id).first()
                if cluster is None:
                    return
                try:
                    self.probe(cluster, pods)
                except kube.KubeError as error:
                    self.count("errors")
                    log.warning("probes of %s: %s", cluster.name, error)
                recheck_at = self._recheck_at(cluster, timezone.now())
        finally:
            connection.close()

    def probe(self, cluster: Cluster, pod_ids: set[int] | None = None) -> int:
        """One planning pass, as a cycle's probing phase (of only `pod_ids`, when given: a pod event's new
        containers, without planning the whole cluster); stores the verdicts the observations change."""
        self.count("passes")
        with self.state.lock:
            listing = Listing(simulated_nodes=set(self.state.listing.simulated_nodes))
        now = timezone.now()
        tasks, immediate = plan_probes(cluster, listing, now, pod_ids=pod_ids)
        if not tasks and not immediate:
            return 0
        with connect(cluster) as client:
            outcomes = run_probes(client, tasks, cluster.exec_concurrency, cluster.exec_timeout_seconds)
        observations = immediate + observations_from(cluster, outcomes, current_hasher(), timezone.now())
        Observation.objects.bulk_create(observations)
        self.count("probes", len(tasks))
        workload_ids = set(
            Consumption.objects.filter(pk__in=[o.consumption_id for o in observations]).values_list(
                "container__pod__workload_id", flat=True
            )
        )
        if verdicts.workloads_changed(cluster, workload_ids) and self.on_judged:
            self.on_judged()
        return len(observations)

    @staticmethod
    def _recheck_at(cluster: Cluster, now: datetime) -> float | None:
        """While a source changed within the propagation window (plus the cycle's margin), its volume consumers
        are read again every snapshot interval, as cycles did, until the window ending settles them."""
        window = timedelta(seconds=cluster.propagation_window_seconds)
        recent = SourceVersion.objects.filter(
            source__cluster=cluster, first_seen__gte=now - window - RECENT_CHANGE_MARGIN
        ).exists()
        return now.timestamp() + cluster.snapshot_interval_seconds if recent else None


@dataclass
class PodWatch(ResourceWatch):
    """The watch of one cluster's pods. Events record the pod, store its workload's verdicts and wake the
    probe planner when a container run is new."""

    cluster_id: int
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
    state: ClusterState = field(default_factory=ClusterState)
    planner: ProbePlanner | None = None
    # Called after it stored verdicts that changed (the notifier judges the notification rules again).
    on_judged: Callable[[], None] | None = None
    # A cluster in namespaced mode (a Role per namespace, no cluster-wide list): one PodWatch per namespace.
    namespace: str = ""

    @property
    def label(self) -> str:
        return f"pods in {self.namespace}" if self.namespace else WorkloadKind.POD.plural

    def _path(self, path: str) -> str:
        """A cluster-wide collection's path, or its namespace's."""
        if not self.namespace:
            return path
        return path.replace("/v1/", f"/v1/namespaces/{kube.validate_namespace(self.namespace)}/", 1)

    # -- LIST ---------------------------------------------------------------------------------------------

    def relist(self, cluster: Cluster, client: kube.KubeClient) -> str:
        """Record every pod as a snapshot does; returns the pods' resourceVersion."""
        self.count("relists")
        listing = Listing(ignored_patterns=tuple(cluster.ignored_config_maps), started_at=timezone.now())
        for kind, path in OWNER_RESOURCES.items():
            for item in client.list_paginated(self._path(path), what=f"list {kind.plural}"):
                self._remember_owner(listing, kind, item)
        self._list_nodes(client, listing)
        token, resource_version = "", ""
        while True:
            page = client.list_page(self._path(PODS), "list pods", token)
            listing.pods.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            resource_version = metadata.get("resourceVersion") or resource_version
            token = metadata.get("continue") or ""
            if not token:
                break
        # Only pods were read (of one namespace, in namespaced mode): sources are neither seen nor gone here.
        pods_read: set[str] | None = {self.namespace} if self.namespace else None
        listing.complete = {resource: set() for resource in LISTED_RESOURCES}
        listing.complete[WorkloadKind.POD.plural] = pods_read
        with self.state.lock:
            # The owners and nodes learnt so far stay (the namespaces of a namespaced cluster share them).
            listing.owners = {**self.state.listing.owners, **listing.owners}
            listing.owner_annotations = {**self.state.listing.owner_annotations, **listing.owner_annotations}
            listing.simulated_nodes |= self.state.listing.simulated_nodes
            self.state.listing = listing
        if record_pods(cluster, listing, timezone.now()).rows:
            verdicts.facts_changed(cluster)
        listing.pods = []  # kept for owners and nodes only: the pods' own state is what Postgres holds
        if self.planner:
            self.planner.wake()
        return resource_version

    # -- WATCH --------------------------------------------------------------------------------------------

    def watch(self, cluster: Cluster, client: kube.KubeClient, resource_version: str, backoff: Backoff) -> str:
        for event in self.open_stream(client, self._path(PODS), resource_version):
            if self.stop.is_set():
                break
            resource_version = self.handle(cluster, client, event) or resource_version
            self.save_position(resource_version)
            backoff.reset()  # the API server answers again: a later outage starts from the first delay
        return resource_version

    def handle(self, cluster: Cluster, client: kube.KubeClient, event: dict[str, Any]) -> str:
        kind, pod = event["type"], event["object"]
        metadata = pod.get("metadata") or {}
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.count("events")
            if kind != "DELETED":
                self._learn(client, pod)
            # The pod's rows and its workload's verdicts in one transaction: a deleted pod leaves the counts the
            # moment its end is recorded, and a new one is never counted before it is judged.
            judged = 0
            with transaction.atomic():
                deleted = kind == "DELETED"
                recorded = record_pod_event(cluster, pod, self.state.listing, timezone.now(), deleted=deleted)
                if recorded.rows and recorded.workload_id is not None:
                    judged = verdicts.workloads_changed(cluster, [recorded.workload_id])
            if judged and self.on_judged:
                self.on_judged()
            if recorded.new_containers and self.planner:
                self.planner.wake(recorded.pod_id)
        return str(metadata.get("resourceVersion") or "")

    def _learn(self, client: kube.KubeClient, pod: dict[str, Any]) -> None:
        """The owner and node of a pod not known yet (a ReplicaSet created after the LIST): one GET each, once."""
        metadata = pod.get("metadata") or {}
        namespace = metadata.get("namespace", "")
        for reference in metadata.get("ownerReferences") or []:
            kind = reference.get("kind", "")
            if not reference.get("controller") or reference.get("uid", "") in self.state.listing.owners:
                continue
            if kind in (WorkloadKind.REPLICA_SET, WorkloadKind.JOB):
                owner_kind = WorkloadKind(kind)
                path = kube.owner_path(owner_kind, namespace, reference.get("name", ""))
                # Already gone: the pod is then its own workload's, as a LIST without the owner would say.
                with contextlib.suppress(kube.NotFound):
                    self._remember_owner(self.state.listing, owner_kind, client.get(path, what=f"get {kind}"))
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if node and node not in self.state.known_nodes:
            try:
                self._remember_node(self.state.listing, client.get(kube.node_path(node), "get node"))
            except kube.KubeError:
                self.state.known_nodes.add(node)  # unknown: file probes there fail on their own, as in a cycle

    def _list_nodes(self, client: kube.KubeClient, listing: Listing) -> None:
        try:
            for node in client.list_paginated("/api/v1/nodes", what="list nodes"):
                self._remember_node(listing, node)
        except kube.Forbidden:
            pass  # as a cycle: without nodes, simulated ones cannot be told apart

    def _remember_node(self, listing: Listing, node: dict[str, Any]) -> None:
        metadata = node.get("metadata") or {}
        name = metadata.get("name", "")
        self.state.known_nodes.add(name)
        if (metadata.get("annotations") or {}).get(SIMULATED_NODE_ANNOTATION):
            with self.state.lock:
                listing.simulated_nodes.add(name)

    @staticmethod
    def _remember_owner(listing: Listing, kind: WorkloadKind, item: dict[str, Any]) -> None:
        metadata = item.get("metadata") or {}
        uid = metadata.get("uid", "")
        listing.owners[uid] = podspec.controller_of(metadata, kind)
        if tools := podspec.restart_tool_annotations(metadata.get("annotations") or {}):
            listing.owner_annotations[uid] = tools
