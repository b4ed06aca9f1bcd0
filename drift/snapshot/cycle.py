"""One snapshot cycle against one cluster: list (drift.snapshot.listing), record what changed
(drift.snapshot.recording), probe what could have changed (drift.snapshot.probing).

All reads happen before any write, so a cluster that stops answering halfway loses nothing recorded. A run
always ends `succeeded`, `partial` or `failed`, whatever happens inside it (a `finally`), with the reason; a
reason names the phase and the type of an unexpected error, never its message, which could quote a value."""

from __future__ import annotations

import logging
import traceback
from datetime import datetime

from django.db import close_old_connections, connection
from django.utils import timezone

from drift import audit, kube, metrics, verdicts
from drift.clusters import connect
from drift.collector import collector_paused
from drift.hashing import current_hasher, previous_hashers
from drift.models import (
    AuditEvent,
    Cluster,
    ClusterVerdicts,
    Consumption,
    ContainerInstance,
    Observation,
    Pod,
    SnapshotRun,
    Source,
    SourceVersion,
    StoredVerdict,
    Workload,
)  # fmt: skip
from drift.snapshot import rekeying
from drift.snapshot.listing import Hashers, SnapshotFailed, read_cluster
from drift.snapshot.probing import observations_from, plan_probes, run_probes
from drift.snapshot.recording import ACTOR, record

log = logging.getLogger(__name__)


def snapshot(cluster: Cluster, now: datetime | None = None) -> SnapshotRun:
    """Run one cycle and return its run record. Never raises for a cluster that cannot be read, nor for an
    error of its own: the run is recorded as failed with its reason, and everything recorded before stays as
    it was. (A worker's shutdown is recorded too, then goes on.)"""
    with collector_paused():
        return _snapshot(cluster, now)


def _snapshot(cluster: Cluster, now: datetime | None) -> SnapshotRun:
    run = SnapshotRun.objects.create(cluster=cluster, started_at=now or timezone.now())
    phase = "starting"

    def enter(name: str) -> None:
        nonlocal phase
        phase = name

    try:
        hasher = current_hasher()
        enter("listing")
        with connect(cluster) as client:
            if client.api_server != cluster.api_server:  # registered before it was kept, or the kubeconfig moved
                Cluster.objects.filter(pk=cluster.pk).update(api_server=client.api_server)
            stored = rekeying.stored_key_ids(cluster, hasher.key_id)
            known = previous_hashers()
            previous = tuple(known[key_id] for key_id in sorted(stored) if key_id in known)
            if stored - set(known):
                log.warning("cluster %s: hashes under unknown key id(s) %s", cluster.name, sorted(stored - set(known)))
            listing = read_cluster(
                client, Hashers(hasher, previous), cluster.ignored_config_maps, only_namespaces=cluster.namespaces
            )
            enter("recording")
            moment = timezone.now()
            recorded = record(cluster, listing, moment, hasher.key_id, tuple(h.key_id for h in previous))
            enter("probing")
            tasks, immediate = plan_probes(cluster, listing, moment)
            outcomes = run_probes(client, tasks, cluster.exec_concurrency, cluster.exec_timeout_seconds)
            enter("recording observations")
            observations = immediate + observations_from(cluster, outcomes, hasher, timezone.now())
            Observation.objects.bulk_create(observations)
            run.api_calls = client.request_count
        run.exec_probes = len(tasks)
        run.rows_written = recorded.rows + len(observations)
        run.forbidden_namespaces = sorted(listing.forbidden)
        run.status = SnapshotRun.Status.PARTIAL if listing.forbidden else SnapshotRun.Status.SUCCEEDED
        Cluster.objects.filter(pk=cluster.pk).update(last_contact_at=timezone.now())
        run.finished_at = timezone.now()
    except (kube.KubeError, SnapshotFailed) as error:
        _fail(cluster, run, str(error))
        log.warning("snapshot of %s failed: %s", cluster.name, run.error)
    except BaseException as error:  # recorded, then raised again below when it is not an Exception
        _fail(cluster, run, f"{type(error).__name__} while {phase}{_raised_at(error)}")
        log.error("snapshot of %s failed: %s", cluster.name, run.error)
        if not isinstance(error, Exception):
            raise  # a worker shutdown or a hard interrupt: the run is recorded, the interrupt goes on
    finally:
        _finish(run)
        elapsed = (run.finished_at or timezone.now()) - run.started_at
        metrics.SNAPSHOT_DURATION.labels(cluster.name).observe(max(elapsed.total_seconds(), 0.0))
    if run.rows_written >= ANALYZE_AFTER_ROWS:
        analyze_recorded_tables()  # before judging, so that judging plans its queries on the new rows too
    _judge(cluster, run)
    return run


# A cycle that wrote this many rows (a first snapshot of a large cluster, a mass change) refreshes the
# planner's statistics at once: until autovacuum got to it, the next cycles' probe planning ran 4 times slower
# (0.8 s against 0.2 s at 5,000 pods) on plans made for nearly empty tables.
ANALYZE_AFTER_ROWS = 5_000


def analyze_recorded_tables() -> None:
    """ANALYZE the tables a cycle writes (half a second at 5,000 pods)."""
    models = (Pod, ContainerInstance, Consumption, Observation, Source, SourceVersion, Workload, StoredVerdict)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models))


def _judge(cluster: Cluster, run: SnapshotRun) -> None:
    """Store the verdicts the facts now give (drift.verdicts), then the run's verdict counts from them. After
    the run's end is saved: the verdicts rest on it (a failing cluster is judged as of its last good run)."""
    try:
        verdicts.after_cycle(cluster, run)
        if run.status != SnapshotRun.Status.FAILED:
            run.verdict_counts = verdicts.cluster_counts(cluster)
            SnapshotRun.objects.filter(pk=run.pk).update(verdict_counts=run.verdict_counts)
    except Exception as error:  # the run's record stands; the next cycle judges again (it sees no judgement)
        log.error("snapshot of %s: judging failed (%s)", cluster.name, type(error).__name__)
        ClusterVerdicts.objects.filter(cluster=cluster).delete()


def _fail(cluster: Cluster, run: SnapshotRun, reason: str) -> None:
    run.status = SnapshotRun.Status.FAILED
    run.error = reason
    try:
        _audit_first_failure(cluster, run)
    except Exception as error:  # the run's own record comes first
        log.error("snapshot of %s: the failure could not be audited (%s)", cluster.name, type(error).__name__)


def _finish(run: SnapshotRun) -> None:
    """Write the run's end even when the error came from the database (its connection may be broken)."""
    if run.status == SnapshotRun.Status.RUNNING:
        run.status = SnapshotRun.Status.FAILED
        run.error = run.error or "interrupted"
    run.finished_at = run.finished_at or timezone.now()
    try:
        run.save()
    except Exception:
        close_old_connections()
        SnapshotRun.objects.filter(pk=run.pk).update(status=run.status, error=run.error, finished_at=run.finished_at)


def _raised_at(error: BaseException) -> str:
    """Where in Driftwatch's code the error was raised: file and line, no values."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if "/drift/" in frame.filename]
    if not frames:
        return ""
    last = frames[-1]
    return f" (drift/{last.filename.rsplit('/drift/', 1)[1]}:{last.lineno})"


def _audit_first_failure(cluster: Cluster, run: SnapshotRun) -> None:
    """One audit entry when a cluster stops answering, not one per cycle while it stays down."""
    previous = cluster.runs.exclude(pk=run.pk).exclude(status=SnapshotRun.Status.RUNNING).first()
    if previous is None or previous.status != SnapshotRun.Status.FAILED:
        audit.record(
            ACTOR, AuditEvent.Action.SNAPSHOT_FAILED, f"snapshot of {cluster.name} failed: {run.error}",
            cluster_name=cluster.name,
        )  # fmt: skip
