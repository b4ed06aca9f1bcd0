"""Celery tasks: thin wrappers that take primary keys and call domain functions."""

from celery import shared_task

from drift.clusters import check_cluster
from drift.models import Cluster


@shared_task
def check_cluster_connection(cluster_id: int) -> str:
    return check_cluster(Cluster.objects.get(pk=cluster_id))
