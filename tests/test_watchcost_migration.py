"""0031_watchcost: the resume points a restarted watcher kept in `WatchPosition` move into the cluster's lease row,
the one resume point left; where the lease kept one too, the newer of the two stays."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from drift.models import ClusterLease

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE, AFTER = [("drift", "0030_cronjob")], [("drift", "0031_watchcost")]


def test_the_saved_positions_move_into_the_leases_and_the_newer_point_stays():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Cluster, Position, Lease = (old.get_model("drift", name) for name in ("Cluster", "WatchPosition", "ClusterLease"))
    unleased = Cluster.objects.create(name="unleased", kubeconfig_path="/nonexistent")
    leased = Cluster.objects.create(name="leased", kubeconfig_path="/nonexistent")
    Position.objects.create(cluster=unleased, kind="ConfigMap", resource_version="120")
    Position.objects.create(cluster=unleased, kind="Secret", resource_version="95")
    Lease.objects.create(cluster=leased, resume_from={"configmaps": "300", "secrets": "200", "configmaps in a": "7"})
    Position.objects.create(cluster=leased, kind="ConfigMap", resource_version="250")  # older than the lease's
    Position.objects.create(cluster=leased, kind="Secret", resource_version="210")  # newer
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    kept = dict(ClusterLease.objects.values_list("cluster__name", "resume_from"))
    assert kept == {
        "unleased": {"configmaps": "120", "secrets": "95"},
        "leased": {"configmaps": "300", "secrets": "210", "configmaps in a": "7"},
    }
    assert ClusterLease.objects.get(cluster__name="unleased").holder_id is None  # a free lease: anyone takes it
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
