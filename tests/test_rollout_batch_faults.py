"""A bulk rollout survives faults without losing a rollout or sending one twice. Found by `make chaos`
(bench/chaos.py): a worker killed between claiming a batch's rollout and patching left it `patching`, and the
follower then ended it `refused` ("its sending was interrupted"); an API server restarting while a batch ran
ended every rollout it reached then `refused` ("did not answer"). Neither was ever sent: the operator's request
was dropped by a transient fault. Now such a rollout goes back to `queued` and is started again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from drift.models import AuditEvent, Cluster, Rollout
from drift.rollout import Target, advance_batch, follow_rollouts, queue_batch
from tests.faultproxy import FaultProxy
from tests.kube_helpers import deployment, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.usefixtures("private_celery_queue")]


def ready_app(kube, name):
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment(name, [container], replicas=1))
    kube.wait_deployment_ready(name)
    return kube.apps.read_namespaced_deployment(name, kube.namespace).metadata.generation


def generation(kube, name):
    return kube.apps.read_namespaced_deployment(name, kube.namespace).metadata.generation


def test_a_batch_rollout_whose_worker_died_before_the_patch_is_started_again_and_sent_once(kubeconfig, kube):
    before = ready_app(kube, "app")
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))
    batch = queue_batch([(cluster, Target("Deployment", kube.namespace, "app"))], "olga")
    # What a worker killed right after claiming the group leaves behind: the row `patching`, nothing sent.
    Rollout.objects.filter(batch=batch).update(
        status=Rollout.Status.PATCHING, patched_at=timezone.now() - timedelta(minutes=5),
        message="starting: planning again before the patch",
    )  # fmt: skip
    follow_rollouts()
    [rollout] = Rollout.objects.filter(batch=batch)
    assert rollout.status in (Rollout.Status.QUEUED, Rollout.Status.IN_PROGRESS), rollout.message
    wait_until(lambda: follow_rollouts() and Rollout.objects.get(pk=rollout.pk).status == "complete", timeout=90)
    assert generation(kube, "app") == before + 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ROLLOUT_REFUSED).count() == 0


def test_a_batch_rollout_reached_while_the_api_server_is_away_waits_for_it_and_is_sent_once(kubeconfig, kube, tmp_path):
    before = ready_app(kube, "app")
    proxy = FaultProxy(kubeconfig, tmp_path).start()
    try:
        cluster = Cluster.objects.create(name="local", kubeconfig_path=str(proxy.kubeconfig_path()))
        batch = queue_batch([(cluster, Target("Deployment", kube.namespace, "app"))], "olga")
        proxy.go_away()
        proxy.drop_connections()
        advance_batch(batch)
        [rollout] = Rollout.objects.filter(batch=batch)
        assert rollout.status == Rollout.Status.QUEUED, rollout.message
        assert "unreachable" in rollout.message
        proxy.come_back()
        wait_until(lambda: follow_rollouts() and Rollout.objects.get(pk=rollout.pk).status == "complete", timeout=90)
    finally:
        proxy.stop()
    assert generation(kube, "app") == before + 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ROLLOUT_REFUSED).count() == 0
