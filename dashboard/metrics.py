"""`/metrics`: the Prometheus text format, built at each scrape.

Gauges come from the database through one collector (drift.verdicts' stored verdicts, plus one query for the
last good snapshot of each cluster), so every web process answers the same and a scrape costs a few queries,
not a scan of the cluster. Counters and the snapshot histogram are those the processes incremented
(drift.metrics), added up across processes when PROMETHEUS_MULTIPROC_DIR is set."""

from __future__ import annotations

import os
import platform
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
from drift.verdicts import GaugeTotals, gauge_totals

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
        totals = gauge_totals(clusters, now)
        yield from _stale_families(totals, now)
        yield from _other_families(clusters, totals, now)

    def text(self) -> bytes:
        """``text_format(self.collect())``, the two families of a series per workload written straight from the
        totals: at 50,000 pods they are 15,000 samples, and building a Metric of each cost more than the query."""
        now = self.now or timezone.now()
        clusters = list(Cluster.objects.all())
        totals = gauge_totals(clusters, now)
        return _stale_text(totals, now) + text_format(_other_families(clusters, totals, now))


def _other_families(clusters: list[Cluster], totals: GaugeTotals, now: datetime) -> Iterator[Metric]:
    yield _pods_family(totals)
    yield _last_success_family(clusters)
    yield _watcher_family(clusters)
    yield _lease_family(clusters, now)
    yield _audit_refused_family()
    build = GaugeMetricFamily(
        "driftwatch_build_info", "Driftwatch's version; always 1.", labels=["version", "python_version"]
    )
    build.add_metric([VERSION, platform.python_version()], 1)
    yield build


STALE_HELP = (
    "Pods running stale configuration, per consumption mode (a pod stale through env and a volume counts in both). "
    "Workload labels are empty for clusters exporting per namespace only."
)
SINCE_HELP = "Seconds since the oldest stale configuration of the workload (or namespace) became stale."


def _stale_families(totals: GaugeTotals, now: datetime) -> Iterator[Metric]:
    stale = GaugeMetricFamily(
        "driftwatch_stale_pods", STALE_HELP, labels=["cluster", "namespace", "workload_kind", "workload", "mode"]
    )
    since = GaugeMetricFamily(
        "driftwatch_stale_since_seconds", SINCE_HELP, labels=["cluster", "namespace", "workload_kind", "workload"]
    )
    for series, count in sorted(totals.stale.items()):
        stale.add_metric(list(series), count)
    for workload, started in sorted(totals.oldest.items()):
        since.add_metric(list(workload), max((now - started).total_seconds(), 0.0))
    yield stale
    yield since


def _stale_text(totals: GaugeTotals, now: datetime) -> bytes:
    """``_stale_families`` in the text format, as text_format writes them (labels in sorted order)."""
    # Each distinct label value escaped once, each distinct value formatted once: most repeat (clusters,
    # namespaces, modes, counts), and a function call per label of 15,000 samples is most of the time.
    label = {value: _escape_label(value) for series in totals.stale for value in series}
    label.update({value: _escape_label(value) for workload in totals.oldest for value in workload})
    counts = {count: floatToGoString(count) for count in set(totals.stale.values())}
    lines = [
        f"# HELP driftwatch_stale_pods {_escape_help(STALE_HELP)}\n",
        "# TYPE driftwatch_stale_pods gauge\n",
    ]
    for (cluster, namespace, kind, name, mode), count in sorted(totals.stale.items()):
        lines.append(
            f'driftwatch_stale_pods{{cluster="{label[cluster]}",mode="{label[mode]}",namespace="{label[namespace]}",'
            f'workload="{label[name]}",workload_kind="{label[kind]}"}} {counts[count]}\n'
        )
    lines.append(f"# HELP driftwatch_stale_since_seconds {_escape_help(SINCE_HELP)}\n")
    lines.append("# TYPE driftwatch_stale_since_seconds gauge\n")
    for (cluster, namespace, kind, name), started in sorted(totals.oldest.items()):
        seconds = max((now - started).total_seconds(), 0.0)
        lines.append(
            f'driftwatch_stale_since_seconds{{cluster="{label[cluster]}",namespace="{label[namespace]}",'
            f'workload="{label[name]}",workload_kind="{label[kind]}"}} {floatToGoString(seconds)}\n'
        )
    return "".join(lines).encode()


def _pods_family(totals: GaugeTotals) -> Metric:
    pods = GaugeMetricFamily(
        "driftwatch_pods",
        "Pods that read a ConfigMap or Secret, by their worst verdict.",
        labels=["cluster", "verdict"],
    )
    for cluster, by_verdict in totals.pods.items():
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
    return generate_latest(registry) + DatabaseCollector(now).text()


def text_format(families: Iterable[Metric]) -> bytes:
    """The Prometheus text format of the database's families, as generate_latest writes it (labels sorted, the
    same value formatting). Written here because generate_latest checks every label name of every sample against
    its UTF-8 rules: at 10 clusters of 5,000 pods (15,000 samples) that was most of a 1.8 s scrape, for names
    this module spells once, all plain [a-z_]."""
    lines: list[str] = []
    # A family's samples share their label names (sorted once, not per sample), and most label values repeat
    # (clusters, namespaces, modes): each is escaped once.
    orders: dict[tuple[str, ...], list[str]] = {}
    escaped: dict[str, str] = {}
    for family in families:
        lines.append(f"# HELP {family.name}{_counter_suffix(family)} {_escape_help(family.documentation)}\n")
        lines.append(f"# TYPE {family.name}{_counter_suffix(family)} {family.type}\n")
        for sample in family.samples:
            if sample.labels:
                names = tuple(sample.labels)
                order = orders.get(names) or orders.setdefault(names, sorted(names))
                values = sample.labels
                labels = ",".join(
                    f'{key}="{escaped.get(values[key]) or escaped.setdefault(values[key], _escape_label(values[key]))}"'
                    for key in order
                )
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
