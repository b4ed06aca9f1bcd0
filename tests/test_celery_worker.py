"""A task travels through the real Redis broker to a real worker process, which writes to Postgres."""

import pytest

from drift.models import Cluster
from drift.tasks import check_cluster_connection

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def test_a_task_runs_in_a_worker_and_writes_to_postgres(kubeconfig, celery_worker_process, celery_queue):
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))
    assert cluster.server_version == ""

    result = check_cluster_connection.apply_async(args=[cluster.pk], queue=celery_queue)
    version = result.get(timeout=60)

    cluster.refresh_from_db()
    assert version.startswith("v1.34")
    assert cluster.server_version == version
    assert cluster.last_contact_at is not None
    assert celery_worker_process.poll() is None
