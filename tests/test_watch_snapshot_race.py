"""The watcher and a listing (a snapshot, or the watcher's own relist) recording one ConfigMap at nearly the same
time keep its timeline in resourceVersion order with each version once. Found by `make chaos` (bench/chaos.py,
PostgreSQL restarting): a listing read before the watcher recorded a version, and recorded after it, stored its
newer version with the older time it began at; the watcher then took its own older version for the latest,
recorded the next events after it, and stored the listing's version a second time (with its audit entry)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from drift.hashing import current_hasher
from drift.models import AuditEvent, Cluster, SourceVersion
from drift.snapshot.listing import Hashers, Listing, listed_source
from drift.snapshot.recording import record_source_event, record_sources
from drift.vocabulary import SourceKind

pytestmark = pytest.mark.django_db

HASHERS = Hashers(current_hasher(), ())


def config_map(resource_version, edit):
    item = {
        "metadata": {"name": "cm", "namespace": "ns", "uid": "uid-cm", "resourceVersion": str(resource_version)},
        "data": {"edit": str(edit)},
    }
    return listed_source(SourceKind.CONFIG_MAP, item, HASHERS)


def watched(cluster, resource_version, edit, at):
    record_source_event(cluster, config_map(resource_version, edit), at, HASHERS.current.key_id)


def listed(cluster, resource_version, edit, began):
    listing = Listing(started_at=began, complete={kind.plural: None for kind in SourceKind})
    listing.sources.append(config_map(resource_version, edit))
    record_sources(cluster, listing, began, HASHERS.current.key_id)


def timeline(cluster):
    return list(
        SourceVersion.objects.filter(source__cluster=cluster)
        .order_by("first_seen", "id")
        .values_list("resource_version", flat=True)
    )


def test_a_listing_that_began_before_a_watched_version_keeps_the_timeline_in_order_and_each_version_once():
    cluster = Cluster.objects.create(name="race", kubeconfig_path="/nonexistent")
    start = timezone.now() - timedelta(minutes=1)
    watched(cluster, 10, "a", start)
    # The listing begins (its time), the watcher records 20 meanwhile, then the listing records what it read: 30.
    began = start + timedelta(seconds=10)
    watched(cluster, 20, "b", began + timedelta(seconds=1))
    listed(cluster, 30, "d", began)
    # The watcher goes on with the events after 20.
    watched(cluster, 25, "c", began + timedelta(seconds=2))
    watched(cluster, 30, "d", began + timedelta(seconds=3))
    watched(cluster, 40, "e", began + timedelta(seconds=4))
    assert timeline(cluster) == ["10", "20", "25", "30", "40"]
    latest = SourceVersion.objects.filter(source__cluster=cluster).latest_per_source().get()
    assert latest.resource_version == "40"
    changes = AuditEvent.objects.filter(action=AuditEvent.Action.CONFIG_CHANGED, cluster_name="race")
    assert sorted(int(entry.detail["resource_version"]) for entry in changes) == [20, 25, 30, 40]
