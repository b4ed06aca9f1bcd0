"""Issue 7's rollout holes, on the real stack: writes recorded before the patch (a Postgres error after it, a
lost answer), GET that changes nothing, a StatefulSet rollout that never ends, cancelling, and operator scopes
checked on the workload's own cluster and namespace."""

import re

import pytest
from django.db import DatabaseError, connection
from django.urls import reverse

from drift.models import AuditEvent, Cluster, Rollout, Workload
from drift.rollout import Target, follow_rollouts, queue_batch, request_rollout
from drift.rollout import follow as follow_module
from tests.facts import user
from tests.faultproxy import FaultProxy
from tests.kube_helpers import wait_until
from tests.test_rollout_cluster import env_app, ready_app

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.django_db,
    pytest.mark.usefixtures("plain_http", "private_celery_queue"),
]

KEY = "driftwatch.io/config-hash"
HTMX = {"HX-Request": "true", "HX-Target": "rollout-panel"}


@pytest.fixture
def cluster(kubeconfig):
    return Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))


def annotations(kube, name="env-demo"):
    return kube.apps.read_namespaced_deployment(name, kube.namespace).spec.template.metadata.annotations or {}


def test_a_postgres_error_after_the_patch_leaves_the_record_of_it(kube, cluster, monkeypatch):
    """The patch is applied, then recording its answer fails in PostgreSQL itself (a trigger refuses the
    update): the `patching` row and its audit entry, written before the patch, are still there, and the
    follower later reads the workload and records the rollout as applied."""
    ready_app(kube, replicas=1)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_in_progress() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'simulated database failure'; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_in_progress BEFORE INSERT OR UPDATE ON drift_rollout FOR EACH ROW "
            "WHEN (NEW.status = 'in_progress') EXECUTE FUNCTION refuse_in_progress()"
        )

    with pytest.raises(DatabaseError, match="simulated database failure"):
        request_rollout(cluster, Target("Deployment", kube.namespace, "env-demo"), "olga")

    rollout = Rollout.objects.get()
    assert rollout.status == "patching"
    assert annotations(kube) == {KEY: rollout.config_hash}, "the patch itself went through"
    [requested] = AuditEvent.objects.filter(action="rollout.requested")
    assert requested.actor == "olga" and "patching" in requested.message

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_in_progress ON drift_rollout")
    monkeypatch.setattr(follow_module, "PATCH_IN_FLIGHT_SECONDS", 0)
    follow_rollouts()
    rollout.refresh_from_db()
    assert rollout.status in ("in_progress", "complete"), rollout.message
    assert "carries it" in rollout.message or rollout.status == "complete"


@pytest.fixture
def proxy(kubeconfig, tmp_path):
    running = FaultProxy(kubeconfig, tmp_path).start()
    yield running
    running.stop()


def the_patch(line: str) -> bool:
    return line.startswith("PATCH ") and "dryRun" not in line


@pytest.mark.parametrize("lost", ["answer", "request"])
def test_after_a_lost_answer_the_workload_is_read_again(kube, proxy, lost):
    """No answer to the patch: whether it was applied is read from the workload, never assumed."""
    ready_app(kube, replicas=1)
    proxied = Cluster.objects.create(name="proxied", kubeconfig_path=str(proxy.kubeconfig_path()))
    proxy.lose = lambda line: lost if the_patch(line) else None

    rollout, _ = request_rollout(proxied, Target("Deployment", kube.namespace, "env-demo"), "olga")

    if lost == "answer":
        assert rollout.status == "in_progress", rollout.message
        assert "showed the patch applied" in rollout.message
        assert annotations(kube) == {KEY: rollout.config_hash}
        assert AuditEvent.objects.filter(action="rollout.requested").count() == 1
    else:
        assert rollout.status == "refused", rollout.message
        assert "The patch was not applied" in rollout.message and "does not carry it" in rollout.message
        assert annotations(kube) == {}
        assert AuditEvent.objects.filter(action="rollout.refused").count() == 1


def snapshot_of_rows():
    return list(Rollout.objects.order_by("id").values())


def test_a_get_by_a_viewer_changes_no_row_and_sends_no_patch(client, kube, cluster):
    """Progress pages only read: the old views advanced batches (sending patches) and refreshed rows on GET."""
    ready_app(kube, replicas=1)
    cluster.rollout_batch_size = 1
    cluster.save()
    kube.create_deployment(env_app("other", replicas=1))
    kube.wait_deployment_ready("other")
    first, _ = request_rollout(cluster, Target("Deployment", kube.namespace, "env-demo"), "olga")
    batch = queue_batch([(cluster, Target("Deployment", kube.namespace, "other"))], "olga")
    wait_until(lambda: kube.apps.read_namespaced_deployment("env-demo", kube.namespace).status.updated_replicas == 1)
    client.force_login(user("vera", "viewer"))  # a login is audited: before counting
    rows, audit = snapshot_of_rows(), AuditEvent.objects.count()
    generation = kube.apps.read_namespaced_deployment("other", kube.namespace).metadata.generation

    for url in (reverse("rollout", args=[first.pk]), reverse("rollout-batch", args=[batch])):
        for headers in (HTMX, {}):
            assert client.get(url, headers=headers).status_code in (200, 286)

    assert snapshot_of_rows() == rows
    assert AuditEvent.objects.count() == audit
    assert kube.apps.read_namespaced_deployment("other", kube.namespace).metadata.generation == generation
    assert annotations(kube, "other") == {}


def test_a_statefulset_that_never_completes_is_stuck_and_stops_blocking(kube, cluster, kube_api):
    """Both nodes cordoned: the StatefulSet's new pod can never be scheduled, and a StatefulSet has no progress
    deadline of its own. Past the cluster's deadline the rollout is marked stuck, with the reason, and the
    workload can be rolled out again."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(kube_api)
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    spec = {
        "replicas": 1,
        "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [container]}},
    }
    kube.apps.create_namespaced_stateful_set(kube.namespace, {"metadata": {"name": "db"}, "spec": spec})
    wait_until(lambda: len(kube.ready_pods("db")) == 1, what="the StatefulSet's pod")
    wait_until(lambda: kube.apps.read_namespaced_stateful_set("db", kube.namespace).status.current_revision)
    cluster.rollout_deadline_seconds = 2
    cluster.save()
    nodes = [node.metadata.name for node in core.list_node().items]
    try:
        for node in nodes:
            core.patch_node(node, {"spec": {"unschedulable": True}})
        rollout, _ = request_rollout(cluster, Target("StatefulSet", kube.namespace, "db"), "olga")
        assert rollout.status == "in_progress", rollout.message

        def stuck():
            follow_rollouts()
            rollout.refresh_from_db()
            return rollout.status == "stuck"

        wait_until(stuck, timeout=60, what="the rollout to be marked stuck")
    finally:
        for node in nodes:
            core.patch_node(node, {"spec": {"unschedulable": False}})
    assert "stuck: not complete 2s after the patch" in rollout.message
    assert rollout.finished
    [failed] = AuditEvent.objects.filter(action="rollout.failed", object_name="db")
    assert "stuck" in failed.message


def test_an_operator_cancels_a_batch_on_its_own_clusters_namespace_only(client, kube, cluster):
    ready_app(kube, replicas=1)
    batch = queue_batch([(cluster, Target("Deployment", kube.namespace, "env-demo"))], "olga")
    url = reverse("rollout-batch-cancel", args=[batch])

    client.force_login(user("elsewhere", "operator", namespaces=[f"prod/{kube.namespace}"]))
    assert client.post(url, headers=HTMX).status_code == 403
    assert Rollout.objects.get().status == "queued"
    assert AuditEvent.objects.filter(action="access.denied", actor="elsewhere").count() == 1

    client.force_login(user("olga", "operator", namespaces=[f"local/{kube.namespace}"]))
    response = client.post(url, headers=HTMX)
    assert response.status_code == 200
    assert "Cancelled" in re.sub(r"\s+", " ", response.content.decode())
    assert Rollout.objects.get().status == "cancelled"
    [cancelled] = AuditEvent.objects.filter(action="rollout.cancelled")
    assert cancelled.actor == "olga"
    follow_rollouts()
    assert annotations(kube) == {}, "a cancelled batch starts nothing"


def test_an_operator_of_one_namespace_may_not_roll_out_another_by_id(client, kube, cluster, kubeconfig):
    """The permission is checked on the resolved row's own cluster and namespace, whatever else is posted."""
    ready_app(kube, replicas=1)
    workload = Workload.objects.create(cluster=cluster, kind="Deployment", namespace=kube.namespace, name="env-demo")
    client.force_login(user("olga", "operator", namespaces=["local/demo", f"other/{kube.namespace}"]))
    for url in (reverse("rollout-plan"), reverse("rollout-start")):
        forged = {"workload": workload.pk, "cluster": "other", "namespace": "demo"}
        assert client.post(url, forged, headers=HTMX).status_code == 403
    assert AuditEvent.objects.filter(action="access.denied", actor="olga").count() == 2
    assert annotations(kube) == {}
    assert not Rollout.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_clicks_at_once_send_one_patch(kube, kubeconfig):
    """Kubernetes calls now run outside the lock: the claim (advisory lock, then the `patching` row) is what
    keeps two simultaneous requests from both patching."""
    import threading

    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig))
    ready_app(kube, replicas=1)
    before = kube.apps.read_namespaced_deployment("env-demo", kube.namespace).metadata.generation
    start, statuses = threading.Barrier(2), []

    def click(actor: str) -> None:
        try:
            start.wait()
            rollout, _ = request_rollout(cluster, Target("Deployment", kube.namespace, "env-demo"), actor)
            statuses.append(rollout.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=click, args=(actor,)) for actor in ("olga", "pavel")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) in (["in_progress", "refused"], ["in_progress", "noop"]), statuses
    assert kube.apps.read_namespaced_deployment("env-demo", kube.namespace).metadata.generation == before + 1


def rollout_busy_settled(kube) -> bool:
    deployment = kube.apps.read_namespaced_deployment("env-demo", kube.namespace)
    return deployment.status.observed_generation == deployment.metadata.generation


def test_an_operator_cancels_one_rollout_and_a_viewer_may_not(client, kube, cluster):
    ready_app(kube, replicas=1)
    # New pods now take 30 s to count as available: the rollout stays in progress meanwhile.
    kube.apps.patch_namespaced_deployment("env-demo", kube.namespace, {"spec": {"minReadySeconds": 30}})
    wait_until(lambda: rollout_busy_settled(kube), what="the controller to see the change")
    rollout, _ = request_rollout(cluster, Target("Deployment", kube.namespace, "env-demo"), "olga")
    assert rollout.status == "in_progress", rollout.message
    url = reverse("rollout-cancel", args=[rollout.pk])

    client.force_login(user("vera", "viewer"))
    assert client.get(url).status_code == 405, "cancelling takes a POST"
    assert client.post(url, headers=HTMX).status_code == 403
    rollout.refresh_from_db()
    assert rollout.status == "in_progress"

    client.force_login(user("olga", "operator", namespaces=[f"local/{kube.namespace}"]))
    response = client.post(url, headers=HTMX)
    assert response.status_code == 200
    rollout.refresh_from_db()
    assert rollout.status == "cancelled"
    assert "cancelled by olga" in rollout.message and "patch already sent stays" in rollout.message
    assert AuditEvent.objects.get(action="rollout.cancelled").actor == "olga"
    follow_rollouts()
    rollout.refresh_from_db()
    assert rollout.status == "cancelled", "the follower leaves a cancelled rollout alone"
