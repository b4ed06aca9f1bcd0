"""Counters and histograms the processes increment (web, Celery workers), exported at `/metrics`.

With PROMETHEUS_MULTIPROC_DIR set (a folder shared by the web server's and the workers' processes, emptied
before they start), prometheus_client writes each process's values to files there and `/metrics` adds them
up, so a counter incremented in a Celery worker is seen by every gunicorn worker. Without it, each process
exports only its own values (enough for `manage.py runserver` and tests).

Gauges (stale pods, verdicts, the last good snapshot) are not here: they are computed from the database at
each scrape (dashboard.metrics), so every process answers the same."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

# One series per counter, not two: the *_created timestamps help no rule here (and multi-process mode has none).
disable_created_metrics()

# Not the library's global registry: the scrape decides whether to read this or the multi-process files.
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)

SNAPSHOT_DURATION = Histogram(
    "driftwatch_snapshot_duration_seconds",
    "Time one snapshot cycle took, failed ones included.",
    ["cluster"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
    registry=PROCESS_REGISTRY,
)
CONFIG_CHANGES = Counter(
    "driftwatch_config_changes_total",
    "ConfigMap and Secret content changes recorded by snapshots.",
    ["cluster", "namespace", "kind"],
    registry=PROCESS_REGISTRY,
)
ROLLOUTS = Counter(
    "driftwatch_rollouts_total",
    "Rollouts that ended, by result (complete, failed, paused, stuck, refused, noop, cancelled).",
    ["cluster", "result"],
    registry=PROCESS_REGISTRY,
)
NOTIFICATIONS = Counter(
    "driftwatch_notifications_total",
    "Notices sent by Driftwatch's own notification channels, by result (sent, retried, failed).",
    ["channel", "result"],
    registry=PROCESS_REGISTRY,
)
