"""`/metrics`: the Prometheus text format, built at each scrape.

Gauges come from the database through one collector (drift.verdicts' stored verdicts, plus one query for the
last good snapshot of each cluster), so every web process answers the same and a scrape costs a few queries,
not a scan of the cluster. Counters and the snapshot histogram are those the processes incremented
(drift.metrics), added up across processes when PROMETHEUS_MULTIPROC_DIR is set."""

from __future__ import annotations

import os
import platform
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.db.models import Max
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from drift import metrics
from drift.models import AuditWebhookRejection, Cluster, ClusterLease, SnapshotRun
from drift.verdicts import WorkloadSummary, workload_summaries
from drift.vocabulary import VERDICT_ORDER

VERSION = "0.10.0"
# Every metric name this endpoint exports (deploy/monitoring is tested against it).
GAUGE_NAMES = (
    "driftwatch_stale_pods",
    "driftwatch_stale_since_seconds",
    "driftwatch_pods",
    "driftwatch_snapshot_last_success_timestamp_seconds",
    "driftwatch_watcher_last_heartbeat_timestamp_seconds",
    "driftwatch_watcher_lease_holder",
    "driftwatch_build_info",
    # A counter, kept in the database (AuditWebhookRejection) rather than in a process.
    "driftwatch_audit_events_refused_total",
)
PROCESS_NAMES = (
    "driftwatch_snapshot_duration_seconds",
    "driftwatch_config_changes_total",
    "driftwatch_rollouts_total",
    "driftwatch_notifications_total",
)


class DatabaseCollector(Collector):
    """The gauges, judged from what the snapshots stored, at scrape time."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now or timezone.now()
        clusters = list(Cluster.objects.all())
        summaries = workload_summaries(now=now)
        per_workload = {cluster.name for cluster in clusters if cluster.metrics_per_workload}
        yield from _stale_families(summaries, per_workload, now)
        yield _pods_family(clusters, summaries)
        yield _last_success_family(clusters)
        yield _watcher_family(clusters)
        yield _lease_family(clusters, now)
        yield _audit_refused_family()
        build = GaugeMetricFamily(
            "driftwatch_build_info", "Driftwatch's version; always 1.", labels=["version", "python_version"]
        )
        build.add_metric([VERSION, platform.python_version()], 1)
        yield build


def _stale_families(summaries: list[WorkloadSummary], per_workload: set[str], now: datetime) -> Iterator[Metric]:
    stale = GaugeMetricFamily(
        "driftwatch_stale_pods",
        "Pods running stale configuration, per consumption mode (a pod stale through env and a volume counts in "
        "both). Workload labels are empty for clusters exporting per namespace only.",
        labels=["cluster", "namespace", "workload_kind", "workload", "mode"],
    )
    since = GaugeMetricFamily(
        "driftwatch_stale_since_seconds",
        "Seconds since the oldest stale configuration of the workload (or namespace) became stale.",
        labels=["cluster", "namespace", "workload_kind", "workload"],
    )
    counts: dict[tuple[str, ...], int] = defaultdict(int)
    oldest: dict[tuple[str, ...], datetime] = {}
    for summary in summaries:
        if summary.cluster in per_workload:
            key = (summary.cluster, summary.namespace, summary.kind, summary.name)
        else:
            key = (summary.cluster, summary.namespace, "", "")
        for mode, count in summary.stale_pods_by_mode.items():
            counts[(*key, mode)] += count
        started = summary.stale_since
        if started is not None and (key not in oldest or started < oldest[key]):
            oldest[key] = started
    for labels, count in sorted(counts.items()):
        stale.add_metric(list(labels), count)
    for labels, started in sorted(oldest.items()):
        since.add_metric(list(labels), max((now - started).total_seconds(), 0.0))
    yield stale
    yield since


def _pods_family(clusters: list[Cluster], summaries: list[WorkloadSummary]) -> Metric:
    pods = GaugeMetricFamily(
        "driftwatch_pods",
        "Pods that read a ConfigMap or Secret, by their worst verdict.",
        labels=["cluster", "verdict"],
    )
    counts: dict[str, dict[str, int]] = {cluster.name: dict.fromkeys(VERDICT_ORDER, 0) for cluster in clusters}
    for summary in summaries:
        for verdict, count in summary.pods.items():
            counts[summary.cluster][verdict] += count
    for cluster, by_verdict in counts.items():
        for verdict, count in by_verdict.items():
            pods.add_metric([cluster, str(verdict)], count)
    return pods


def _last_success_family(clusters: list[Cluster]) -> Metric:
    family = GaugeMetricFamily(
        "driftwatch_snapshot_last_success_timestamp_seconds",
        "When the last snapshot that read the cluster (succeeded or partial) ended, in Unix seconds.",
        labels=["cluster"],
    )
    good = (SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.PARTIAL)
    ends = dict(
        SnapshotRun.objects.filter(status__in=good)
        .values("cluster__name")
        .annotate(last=Max("finished_at"))
        .values_list("cluster__name", "last")
    )
    for cluster in clusters:
        if ends.get(cluster.name) is not None:
            family.add_metric([cluster.name], ends[cluster.name].timestamp())
    return family


def _watcher_family(clusters: list[Cluster]) -> Metric:
    family = GaugeMetricFamily(
        "driftwatch_watcher_last_heartbeat_timestamp_seconds",
        "When the watcher (manage.py watch) last reported on the cluster, in Unix seconds; 0 when it never has.",
        labels=["cluster"],
    )
    for cluster in clusters:
        heard = cluster.watch_heartbeat_at
        family.add_metric([cluster.name], heard.timestamp() if heard is not None else 0.0)
    return family


def _lease_family(clusters: list[Cluster], now: datetime) -> Metric:
    family = GaugeMetricFamily(
        "driftwatch_watcher_lease_holder",
        "Which watcher process (manage.py watch) holds the cluster's lease and watches it: 1 with its host, pid and "
        "process id; 0 with empty labels when no process holds it (its watches are stopped).",
        labels=["cluster", "host", "pid", "process"],
    )
    leases = {lease.cluster_id: lease for lease in ClusterLease.objects.all()}
    for cluster in clusters:
        lease = leases.get(cluster.pk)
        if lease is not None and lease.held_at(now):
            family.add_metric([cluster.name, lease.holder_host, str(lease.holder_pid), str(lease.holder_id)], 1)
        else:
            family.add_metric([cluster.name, "", "", ""], 0)
    return family


def _audit_refused_family() -> Metric:
    family = CounterMetricFamily(
        "driftwatch_audit_events_refused",
        "What the audit webhook refused, per cluster and reason: reasons starting with 'event' count single "
        "events (the rest of their batch was kept), the others whole batches. Cluster '' is no registered one.",
        labels=["cluster", "reason"],
    )
    for cluster, reason, count in AuditWebhookRejection.objects.values_list("cluster_name", "reason", "count"):
        family.add_metric([cluster, reason], count)
    return family


class _ProcessCollector(Collector):
    """This process's own counters (no PROMETHEUS_MULTIPROC_DIR: a single process, or a test)."""

    def collect(self) -> Iterator[Metric]:
        yield from metrics.PROCESS_REGISTRY.collect()


def scrape(now: datetime | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    return generate_latest(registry) + text_format(DatabaseCollector(now).collect())


def text_format(families: Iterable[Metric]) -> bytes:
    """The Prometheus text format of the database's families, as generate_latest writes it (labels sorted, the
    same value formatting). Written here because generate_latest checks every label name of every sample against
    its UTF-8 rules: at 10 clusters of 5,000 pods (15,000 samples) that was most of a 1.8 s scrape, for names
    this module spells once, all plain [a-z_]."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name}{_counter_suffix(family)} {_escape_help(family.documentation)}\n")
        lines.append(f"# TYPE {family.name}{_counter_suffix(family)} {family.type}\n")
        for sample in family.samples:
            if sample.labels:
                labels = ",".join(f'{key}="{_escape_label(value)}"' for key, value in sorted(sample.labels.items()))
                lines.append(f"{sample.name}{{{labels}}} {floatToGoString(sample.value)}\n")
            else:
                lines.append(f"{sample.name} {floatToGoString(sample.value)}\n")
    return "".join(lines).encode()


def _counter_suffix(family: Metric) -> str:
    # As generate_latest: a counter family is announced under its samples' name (NAME_total).
    return "_total" if family.type == "counter" else ""


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
