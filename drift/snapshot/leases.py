"""Which `manage.py watch` process watches which cluster: a lease row per cluster in PostgreSQL (ClusterLease).

A process holds a cluster's lease for `lease_seconds` and renews it every `lease_seconds / 3`; a process that
stops renewing (killed, frozen, cut from the database) loses it when it expires, and another live process takes
it over and resumes the cluster's watches from the resourceVersions the lease row kept (`resume_from`), so the
API server replays what happened in between. That is the one resume point: a watcher killed and started again is,
to the lease, just its next holder. It is written with each renewal, and at once after a fresh list
(`keep_position`), always as a compare-and-set on the holder, so a process that lost the lease cannot move it.

Each process takes at most its fair share (the clusters divided by the live processes, rounded up: a row per
process, WatcherProcess, renewed with its leases) and gives back one lease a round while it holds more, so a
second process started beside a first one gets half of the clusters within a few rounds.

The lease is in PostgreSQL rather than in a Redis lock because what it guards is written to PostgreSQL: the
holder check and the row's resume point sit in the database the versions are recorded in, with PostgreSQL's
clock deciding expiry for every host, and a Redis restart or failover (which loses locks silently) cannot hand
one cluster to two watchers. Redis stays the Celery broker only.

A holder fences itself, not only the database: each cluster's watches run under a LeaseFence, an Event that
reads as set once the lease's own deadline passed (measured on this process's monotonic clock from before the
last successful renewal, so it ends before the database's expiry). A frozen or partitioned process therefore stops
recording a cluster before any other process can take it over, even if it never gets to run its lease loop."""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection
from django.db.models.functions import Now

from drift.models import Cluster, WatcherProcess

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 15.0
# A process that has not renewed its row for this many lease periods is forgotten (its row deleted).
FORGET_AFTER_LEASES = 20


@dataclass(frozen=True)
class Holder:
    """This process, as lease rows, the cluster's page and /metrics name it."""

    host: str
    pid: int
    process_id: uuid.UUID

    @classmethod
    def this_process(cls) -> Holder:
        return cls(socket.gethostname(), os.getpid(), uuid.uuid4())

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid} ({str(self.process_id)[:8]})"


class LeaseFence(threading.Event):
    """The stop signal of one held cluster's watches: set when asked to stop, and also, without anyone setting it,
    once `deadline` (time.monotonic()) has passed: a holder that could not renew stops recording by itself."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def is_set(self) -> bool:
        return super().is_set() or time.monotonic() >= self.deadline

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.5 if end is None else min(0.5, end - time.monotonic())
            if left <= 0:
                return False
            super().wait(left)
        return True


@dataclass
class Round:
    """What one round of the lease loop changed: clusters gained (with where their watches resume) and lost."""

    gained: dict[int, dict[str, str]] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)


class LeaseKeeper:
    """The leases of one watcher process. `take_round()` renews what it holds, gives back or takes clusters to
    reach its fair share, and says what changed; the caller starts and stops the watches. Every statement is a
    single atomic compare-and-set on the lease row, so two processes never both hold one cluster."""

    def __init__(self, holder: Holder, lease_seconds: float = DEFAULT_LEASE_SECONDS, cluster_name: str = "") -> None:
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.cluster_name = cluster_name
        self.fences: dict[int, LeaseFence] = {}

    @property
    def renew_every(self) -> float:
        return self.lease_seconds / 3

    @property
    def held(self) -> set[int]:
        return set(self.fences)

    def take_round(self, checkpoints: dict[int, dict[str, str]]) -> Round:
        """One round; `checkpoints` are, per held cluster, the resourceVersions its watches recorded up to."""
        result = Round()
        started = time.monotonic()
        self._announce()
        for cluster_id in sorted(self.held):
            if not self._renew(cluster_id, checkpoints.get(cluster_id, {})):
                log.warning("lost the lease of cluster %s (another process holds it or it expired)", cluster_id)
                self._drop(cluster_id)
                result.lost.add(cluster_id)
            else:
                self.fences[cluster_id].deadline = started + self.lease_seconds
        wanted = self._clusters()
        for cluster_id in self.held - set(wanted):
            self._drop(cluster_id)  # the cluster was removed (the row went with it)
            result.lost.add(cluster_id)
        share = math.ceil(len(wanted) / max(self._live_processes(), 1))
        if len(self.held) > share:
            # One a round, so that the others (which see the same counts) take them up without a stampede.
            cluster_id = max(self.held)
            self.release(cluster_id, checkpoints.get(cluster_id, {}))
            result.lost.add(cluster_id)
        for cluster_id in wanted:
            if len(self.held) >= share:
                break
            if cluster_id in self.held:
                continue
            resume_from = self._acquire(cluster_id)
            if resume_from is not None:
                self.fences[cluster_id] = LeaseFence(started + self.lease_seconds)
                result.gained[cluster_id] = resume_from
                log.info("took the lease of cluster %s (%s)", cluster_id, self.holder)
        self._forget_the_long_gone()
        return result

    def fence(self, cluster_id: int) -> LeaseFence:
        return self.fences[cluster_id]

    def release(self, cluster_id: int, checkpoint: dict[str, str]) -> None:
        """Give the cluster back (its watches are stopped first), keeping where they had recorded up to."""
        self._drop(cluster_id)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE drift_clusterlease SET holder_id = NULL, holder_host = '', holder_pid = NULL, "
                "expires_at = now(), resume_from = resume_from || %s::jsonb "
                "WHERE cluster_id = %s AND holder_id = %s",
                [_json(checkpoint), cluster_id, self.holder.process_id],
            )
        log.info("released the lease of cluster %s", cluster_id)

    def keep_position(self, cluster_id: int, label: str, resource_version: str) -> None:
        """Write one watch's resume point into the lease row now, not at the next renewal: after a fresh list, a
        holder killed before that renewal would leave the next one nothing to resume from (a relist then shows
        only each object's latest content). Only while this process holds the lease."""
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE drift_clusterlease SET resume_from = resume_from || %s::jsonb "
                "WHERE cluster_id = %s AND holder_id = %s",
                [_json({label: resource_version}), cluster_id, self.holder.process_id],
            )

    def release_all(self, checkpoints: dict[int, dict[str, str]]) -> None:
        """On a clean stop: every lease back at once (another process takes them over without waiting for the
        expiry), and this process's row gone."""
        for cluster_id in sorted(self.held):
            self.release(cluster_id, checkpoints.get(cluster_id, {}))
        WatcherProcess.objects.filter(pk=self.holder.process_id).delete()

    # -- the statements ----------------------------------------------------------------------------------

    def _announce(self) -> None:
        updated = WatcherProcess.objects.filter(pk=self.holder.process_id).update(renewed_at=Now())
        if not updated:
            WatcherProcess.objects.create(process_id=self.holder.process_id, host=self.holder.host, pid=self.holder.pid)

    def _live_processes(self) -> int:
        alive_since = Now() - timedelta(seconds=self.lease_seconds)
        return WatcherProcess.objects.filter(renewed_at__gt=alive_since).count()

    def _clusters(self) -> list[int]:
        clusters = Cluster.objects.filter(name=self.cluster_name) if self.cluster_name else Cluster.objects.all()
        return list(clusters.order_by("pk").values_list("pk", flat=True))

    def _renew(self, cluster_id: int, checkpoint: dict[str, str]) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE drift_clusterlease SET renewed_at = now(), expires_at = now() + %s * interval '1 second', "
                "resume_from = resume_from || %s::jsonb WHERE cluster_id = %s AND holder_id = %s",
                [self.lease_seconds, _json(checkpoint), cluster_id, self.holder.process_id],
            )
            return cursor.rowcount == 1

    def _acquire(self, cluster_id: int) -> dict[str, str] | None:
        """Take the lease if it is free or expired; returns where the last holder's watches had recorded up to, or
        None when another process holds it."""
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO drift_clusterlease AS lease (cluster_id, holder_id, holder_host, holder_pid, "
                "acquired_at, renewed_at, expires_at, resume_from) "
                "SELECT id, %s, %s, %s, now(), now(), now() + %s * interval '1 second', '{}'::jsonb "
                "FROM drift_cluster WHERE id = %s "
                "ON CONFLICT (cluster_id) DO UPDATE SET holder_id = EXCLUDED.holder_id, "
                "holder_host = EXCLUDED.holder_host, holder_pid = EXCLUDED.holder_pid, acquired_at = now(), "
                "renewed_at = now(), expires_at = EXCLUDED.expires_at "
                "WHERE lease.holder_id IS NULL OR lease.expires_at IS NULL OR lease.expires_at <= now() "
                "RETURNING lease.resume_from",
                [self.holder.process_id, self.holder.host, self.holder.pid, self.lease_seconds, cluster_id],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        resume_from = json.loads(row[0]) if isinstance(row[0], str) else row[0]
        return {str(key): str(value) for key, value in (resume_from or {}).items()}

    def _drop(self, cluster_id: int) -> None:
        fence = self.fences.pop(cluster_id, None)
        if fence is not None:
            fence.set()

    def _forget_the_long_gone(self) -> None:
        gone_since = Now() - timedelta(seconds=self.lease_seconds * FORGET_AFTER_LEASES)
        WatcherProcess.objects.filter(renewed_at__lt=gone_since).delete()


def _json(checkpoint: dict[str, str]) -> str:
    return json.dumps({key: value for key, value in checkpoint.items() if value})
