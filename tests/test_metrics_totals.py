"""`/metrics` at scale (issue 19): the gauges are added up by the database (drift.verdicts.gauge_totals), and must
be what adding up every workload's summary gives, per workload or per namespace as each cluster exports, with
expired verdicts and clusters judged whole in memory added in."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from drift import verdicts
from drift.models import Cluster, ClusterVerdicts, WorkloadVerdicts
from drift.vocabulary import VERDICT_ORDER
from tests.test_views_overview_clusters import cluster_with

pytestmark = pytest.mark.django_db


def added_up_in_python(now):
    clusters = list(Cluster.objects.all())
    per_workload = {c.name: c.metrics_per_workload for c in clusters}
    expected = verdicts.GaugeTotals({}, {}, {c.name: dict.fromkeys(VERDICT_ORDER, 0) for c in clusters})
    for summary in verdicts.workload_summaries(now=now):
        expected.add(summary, per_workload[summary.cluster])
    return clusters, expected


def test_the_database_adds_up_what_the_summaries_say():
    cluster_with("alpha", stale=3, fresh=2)
    beta = cluster_with("beta", stale=2, fresh=1)
    Cluster.objects.filter(pk=beta.cluster.pk).update(metrics_per_workload=False)
    gamma = cluster_with("gamma", stale=1, fresh=1)
    ClusterVerdicts.objects.filter(pk=gamma.cluster.pk).delete()  # never judged: judged whole when read
    now = timezone.now()
    # One workload's stored verdicts expired: it is judged again when read.
    WorkloadVerdicts.objects.filter(cluster__name="alpha", name="stale-1").update(expires_at=now - timedelta(seconds=1))
    clusters, expected = added_up_in_python(now)
    totals = verdicts.gauge_totals(clusters, now)
    assert totals == expected
    assert totals.stale[("alpha", "demo", "Deployment", "stale-1", "envFrom")] == 1
    assert totals.stale[("beta", "demo", "", "", "envFrom")] == 2  # per namespace: its two stale workloads
    assert ("beta", "demo", "Deployment", "stale-0", "envFrom") not in totals.stale
    assert totals.stale[("alpha", "demo", "Deployment", "fresh-0", "envFrom")] == 0  # a series that drops to 0
    assert totals.pods["gamma"]["stale"] == 2 and totals.pods["alpha"]["stale"] == 4
    assert set(totals.oldest) >= {("alpha", "demo", "Deployment", "stale-0"), ("beta", "demo", "", "")}


def test_the_scrape_exports_them():
    cluster_with("alpha", stale=2, fresh=1)
    response = Client().get("/metrics")
    families = {f.name: f.samples for f in text_string_to_metric_families(response.content.decode())}
    stale = {
        (s.labels["workload"], s.labels["mode"]): s.value
        for s in families["driftwatch_stale_pods"]
        if s.labels["namespace"] == "demo"
    }
    assert stale[("stale-0", "envFrom")] == 1 and stale[("fresh-0", "envFrom")] == 0
    pods = {s.labels["verdict"]: s.value for s in families["driftwatch_pods"] if s.labels["cluster"] == "alpha"}
    assert pods["stale"] == 3  # stale-0, stale-1 and shop-stale


def test_the_scrapes_fast_writer_writes_what_the_client_library_writes():
    """DatabaseCollector.text (what a scrape serves) against prometheus_client's own writer of the same families,
    with series per workload and per namespace, stale for a while, and a cluster judged whole when read."""
    from prometheus_client import CollectorRegistry, generate_latest

    from dashboard.metrics import DatabaseCollector

    cluster_with("alpha", stale=3, fresh=2)
    beta = cluster_with("beta", stale=2, fresh=1)
    Cluster.objects.filter(pk=beta.cluster.pk).update(metrics_per_workload=False)
    ClusterVerdicts.objects.filter(pk=cluster_with("gamma", stale=1, fresh=0).cluster.pk).delete()
    now = timezone.now() + timedelta(minutes=3)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(now))
    written = DatabaseCollector(now).text()
    assert written == generate_latest(registry)
    assert (
        b'driftwatch_stale_pods{cluster="beta",mode="envFrom",namespace="demo",workload="",workload_kind=""} 2.0'
        in written
    )
    assert b'driftwatch_stale_since_seconds{cluster="alpha",namespace="demo",workload="stale-0"' in written
