"""The eviction action beyond Deployments and StatefulSets, on the real control plane: an OnDelete DaemonSet (the
template patch restarts nothing there) is fixed pod by pod, and a rollout window that closes mid-way holds the
next pod until it opens again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from drift.models import AuditEvent, Cluster, Rollout, RolloutWindow
from drift.rollout import Target, refresh_rollout, request_eviction, request_rollout
from tests.kube_helpers import deployment, wait_until
from tests.test_rollout_evict import follow_eviction as follow
from tests.test_rollout_evict import snapshot, uids

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.usefixtures("private_celery_queue")]


@pytest.fixture
def cluster(kubeconfig, namespace):
    return Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])


def on_delete_daemonset(kube, name, config_map):
    # Two simulated nodes only: the cluster may have more (a benchmark adds some), and the real node is tainted.
    nodes = sorted(node.metadata.name for node in kube.core.list_node(label_selector="type=kwok").items)[:2]
    container = {"name": "agent", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": config_map}}]}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": nodes}
                ]}]
            }
        }
    }  # fmt: skip
    kube.apps.create_namespaced_daemon_set(
        kube.namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "updateStrategy": {"type": "OnDelete"},
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [container], "affinity": affinity},
                },
            },
        },
    )
    wait_until(lambda: len(kube.ready_pods(name)) == 2, what=f"{name}'s two pods Ready")


def test_an_on_delete_daemonset_is_fixed_by_evicting_its_stale_pods(kube, cluster):
    kube.config_map("agent-config", {"mode": "a"})
    on_delete_daemonset(kube, "agent", "agent-config")
    snapshot()
    kube.edit_config_map("agent-config", {"mode": "b"})
    snapshot()
    before = uids(kube, "agent")
    target = Target("DaemonSet", kube.namespace, "agent")

    # The template patch would restart nothing on an OnDelete DaemonSet: refused, saying why.
    refused, _ = request_rollout(cluster, target, "olga")
    assert refused.status == "refused" and "OnDelete" in refused.message

    rollout, _ = request_eviction(cluster, target, "olga")
    assert rollout.status == "in_progress", rollout.message
    rollout = follow(rollout)

    assert rollout.status == "complete", rollout.message
    after = uids(kube, "agent")
    assert len(after) == 2 and set(after).isdisjoint(before), "the DaemonSet's pods were not all replaced"
    # Every replacement stands on one of the nodes the old pods stood on: the DaemonSet controller replaced them.
    assert {pod.spec.node_name for pod in after.values()} == {pod.spec.node_name for pod in before.values()}
    assert {p["uid"] for p in rollout.evicted} == set(before)


def test_a_window_that_closes_mid_way_holds_the_next_pod_until_it_opens(kube, cluster, settings):
    settings.TIME_ZONE = "UTC"
    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    kube.create_deployment(deployment("held", [container], replicas=2))
    kube.wait_deployment_ready("held")
    snapshot()
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    snapshot()
    before = uids(kube, "held")

    rollout, _ = request_eviction(cluster, Target("Deployment", kube.namespace, "held"), "olga", at_once=1)
    assert rollout.status == "in_progress", rollout.message
    assert len(rollout.evicted) == 1, "the first pod goes when the rollout starts"
    [first] = [p["uid"] for p in rollout.evicted]

    # The window closes: the only one of the namespace opens in an hour.
    opens = timezone.localtime() + timedelta(hours=1)
    window = RolloutWindow.objects.create(
        cluster=cluster, namespace=kube.namespace,
        start=opens.time().replace(second=0, microsecond=0),
        end=(opens + timedelta(minutes=1)).time().replace(second=0, microsecond=0),
    )  # fmt: skip

    def held():
        nonlocal rollout
        rollout = refresh_rollout(rollout)
        return rollout.message.startswith("waiting: Outside the rollout windows")

    wait_until(held, timeout=120, interval=1, what="the rollout to wait for the window")
    # Held, not failed: still in progress, and the second stale pod is still there, untouched.
    assert rollout.status == Rollout.Status.IN_PROGRESS
    assert len(rollout.evicted) == 1
    [second] = set(before) - {first}
    for _ in range(3):
        rollout = refresh_rollout(rollout)
        assert second in uids(kube, "held"), "the window was closed, yet the next pod went"
    assert len(rollout.evicted) == 1

    window.delete()
    rollout = follow(rollout)
    assert rollout.status == "complete", rollout.message
    assert set(uids(kube, "held")).isdisjoint(before)
    assert AuditEvent.objects.filter(action="rollout.completed", object_name="held").count() == 1


HTMX = {"HX-Request": "true", "HX-Target": "rollout-panel"}


@pytest.mark.usefixtures("plain_http")
def test_the_bulk_form_restarts_only_the_stale_pods_of_every_ticked_workload(kube, cluster, client):
    from django.urls import reverse

    from drift.models import Workload
    from drift.tasks import track_rollouts
    from tests.facts import user

    kube.config_map("env-config", {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "env-config"}}]}
    for name in ("one", "two"):
        kube.create_deployment(deployment(name, [container], replicas=2))
    for name in ("one", "two"):
        kube.wait_deployment_ready(name)
    snapshot()
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    # Split "two": one of its pods is replaced by hand and reads the new value; the other stays stale.
    original = set(uids(kube, "two"))
    replaced = sorted(kube.pods("two"), key=lambda pod: pod.metadata.name)[0]
    kube.core.delete_namespaced_pod(replaced.metadata.name, kube.namespace)
    wait_until(lambda: replaced.metadata.uid not in uids(kube, "two"), what="the hand-deleted pod gone")
    kube.wait_deployment_ready("two")
    wait_until(lambda: len(kube.ready_pods("two")) == 2, what="two's two pods Ready")
    snapshot()
    before = {name: uids(kube, name) for name in ("one", "two")}
    [fresh_uid] = set(before["two"]) - original
    ids = [Workload.objects.get(cluster=cluster, kind="Deployment", namespace=kube.namespace, name=n).pk for n in ("one", "two")]  # fmt: skip

    # A viewer may not even plan it; an unknown action is refused before anything is read.
    client.force_login(user("vera", "viewer"))
    assert (
        client.post(reverse("rollout-bulk-plan"), {"workload": ids, "action": "evict"}, headers=HTMX).status_code == 403
    )
    client.force_login(user("olga", "operator"))
    assert (
        client.post(reverse("rollout-bulk-plan"), {"workload": ids, "action": "nuke"}, headers=HTMX).status_code == 400
    )

    plan = client.post(reverse("rollout-bulk-plan"), {"workload": ids, "action": "evict"}, headers=HTMX)
    content = plan.content.decode()
    assert "Restart the stale pods of 2 workloads?" in content
    assert before["two"][fresh_uid].metadata.name in content  # listed among the pods that stay
    assert 'name="action" value="evict"' in content

    started = client.post(reverse("rollout-bulk-start"), {"workload": ids, "action": "evict"}, headers=HTMX)
    assert started.status_code == 200
    batch = Rollout.objects.filter(name="one").get().batch

    def poll():
        track_rollouts()
        response = client.get(reverse("rollout-batch", args=[batch]), headers=HTMX)
        return response if response.status_code == 286 else None

    wait_until(poll, timeout=180, what="the batch to finish")
    ended = sorted(Rollout.objects.filter(batch=batch).values_list("action", "status", "message"))
    assert [row[:2] for row in ended] == [("evict", "complete")] * 2, ended
    after = {name: uids(kube, name) for name in ("one", "two")}
    assert set(after["one"]).isdisjoint(before["one"]), "a stale pod of one is still there"
    assert fresh_uid in after["two"], "the fresh pod of two was evicted"
    assert set(after["two"]) & set(before["two"]) == {fresh_uid}
    requested = AuditEvent.objects.filter(action="rollout.requested", actor="olga").order_by("id")
    assert [event.detail["action"] for event in requested] == ["evict", "evict"]
