"""Restart the stale pods only, for a workload whose pods an operator owns, on the real control plane: a custom
resource (a Widget, of a CRD made for the test) is the controller of two pods that read a ConfigMap's env, and the
test plays its operator (a replacement pod owned by the Widget whenever one is gone). Driftwatch never reads the
Widget: it finds its pods by the owner's UID the snapshot recorded. Where nobody replaces the evicted pod, the
rollout ends stuck at the cluster's deadline, naming the pod."""

import io
import threading

import pytest
from django.core.management import call_command
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from drift.models import AuditEvent, Cluster, Rollout, Workload
from drift.rollout import Target, refresh_rollout, request_eviction, request_rollout
from tests.kube_helpers import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.usefixtures("private_celery_queue")]


@pytest.fixture
def cluster(kubeconfig, namespace):
    return Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])


@pytest.fixture
def widget_group(kube_api, namespace):
    """A namespaced CRD of Widgets in an API group of this test's own (a CRD is cluster-scoped: deleted at the end,
    and no other run shares it)."""
    group = f"{namespace}.test.driftwatch.io"
    extensions = k8s.ApiextensionsV1Api(kube_api)
    name = f"widgets.{group}"
    extensions.create_custom_resource_definition(
        {
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{
                    "name": "v1", "served": True, "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }],
            },
        }
    )  # fmt: skip

    def established():
        found = extensions.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in found.status.conditions or [])

    wait_until(established, what=f"CRD {name} established")
    yield group
    extensions.delete_custom_resource_definition(name)


def snapshot():
    out = io.StringIO()
    call_command("snapshot", "--cluster", "local", stdout=out)
    assert out.getvalue().startswith("local: succeeded"), out.getvalue()


def widget(kube, group, name):
    """A Widget and its metadata (uid) as the API server returns them."""
    body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": 2}}
    return kube.custom.create_namespaced_custom_object(group, "v1", kube.namespace, "widgets", body)["metadata"]


def widget_pod(kube, group, owner, config_map, name=None):
    """A pod whose controller is the Widget, reading `config_map` through env, as its operator would create it."""
    metadata = {
        "labels": {"app": owner["name"]},
        "ownerReferences": [{
            "apiVersion": f"{group}/v1", "kind": "Widget", "name": owner["name"], "uid": owner["uid"],
            "controller": True, "blockOwnerDeletion": True,
        }],
    }  # fmt: skip
    metadata |= {"name": name} if name else {"generateName": f"{owner['name']}-"}
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": config_map}}]}
    return kube.core.create_namespaced_pod(kube.namespace, {"metadata": metadata, "spec": {"containers": [container]}})


def owned_pods(kube, owner):
    pods = kube.core.list_namespaced_pod(kube.namespace, label_selector=f"app={owner['name']}").items
    return [
        pod
        for pod in pods
        if not pod.metadata.deletion_timestamp
        and any(ref.uid == owner["uid"] and ref.controller for ref in pod.metadata.owner_references or [])
    ]


def ready_uids(kube, owner):
    ready = [p for p in owned_pods(kube, owner) if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]  # fmt: skip
    return {pod.metadata.uid for pod in ready}


class Operator(threading.Thread):
    """The Widget's operator, played by the test: whenever fewer than `size` of its pods live, it creates one."""

    def __init__(self, kube, group, owner, config_map, size=2):
        super().__init__(daemon=True)
        self.kube, self.group, self.owner, self.config_map, self.size = kube, group, owner, config_map, size
        self.created: list[str] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.5):
            try:
                if len(owned_pods(self.kube, self.owner)) < self.size:
                    pod = widget_pod(self.kube, self.group, self.owner, self.config_map)
                    self.created.append(pod.metadata.uid)
            except ApiException:
                continue  # the namespace is going away at the end of the test


def follow(rollout, timeout=180):
    def ended():
        nonlocal rollout
        rollout = refresh_rollout(rollout)
        return rollout.finished

    wait_until(ended, timeout=timeout, interval=1, what=f"rollout {rollout} to end")
    return rollout


def two_stale_widget_pods(kube, group, name):
    kube.config_map("widget-config", {"mode": "a"})
    owner = widget(kube, group, name)
    for index in (0, 1):
        widget_pod(kube, group, owner, "widget-config", name=f"{name}-{index}")
    wait_until(lambda: len(ready_uids(kube, owner)) == 2, what=f"{name}'s two pods Ready")
    snapshot()
    kube.edit_config_map("widget-config", {"mode": "b"})
    snapshot()
    return owner


def test_an_operator_owned_workload_is_fixed_by_evicting_its_stale_pods(kube, kube_api, cluster, widget_group):
    owner = two_stale_widget_pods(kube, widget_group, "shelf")
    stored = Workload.objects.get(cluster=cluster, kind="Widget", name="shelf")
    assert stored.uid == owner["uid"], "the snapshot records the owner's UID, by which its pods are found"
    before = ready_uids(kube, owner)
    target = Target("Widget", kube.namespace, "shelf")

    # No template to patch: Roll out is refused, pointing at the eviction action.
    refused, _ = request_rollout(cluster, target, "olga")
    assert refused.status == "refused"
    assert "Restart its stale pods only (the eviction action)" in refused.message, refused.message

    operator = Operator(kube, widget_group, owner, "widget-config")
    operator.start()
    try:
        rollout, plan = request_eviction(cluster, target, "olga", at_once=1)
        assert rollout.status == "in_progress", rollout.message
        assert set(plan.pod_uids) == before
        assert any("Widget/shelf is expected to replace each evicted pod" in w for w in plan.warnings), plan.warnings
        assert "ends stuck at the cluster's rollout deadline" in " ".join(plan.warnings)
        assert len(rollout.evicted) == 1, "one at a time"
        rollout = follow(rollout)
    finally:
        operator.stop.set()
        operator.join(timeout=10)

    assert rollout.status == "complete", rollout.message
    after = ready_uids(kube, owner)
    assert len(after) == 2 and after.isdisjoint(before), "the Widget's stale pods were not both replaced"
    assert after <= set(operator.created), "the replacements are the operator's pods, owned by the Widget"
    assert {p["uid"] for p in rollout.evicted} == before
    requested = AuditEvent.objects.get(action="rollout.requested", object_name="shelf")
    assert requested.actor == "olga" and requested.detail["action"] == "evict"
    assert AuditEvent.objects.filter(action="rollout.completed", object_name="shelf").count() == 1


def test_an_evicted_pod_nobody_replaces_leaves_the_rollout_stuck_at_the_deadline(kube, cluster, widget_group):
    owner = two_stale_widget_pods(kube, widget_group, "orphan")
    cluster.rollout_deadline_seconds = 5
    cluster.save()
    target = Target("Widget", kube.namespace, "orphan")

    # Started from the command line (the kind in any case, as people type it); no operator runs: nothing replaces
    # the evicted pod.
    out = io.StringIO()
    call_command("rollout", "widget/orphan", "-n", kube.namespace, "--pods", "stale", "--actor", "olga", stdout=out)
    assert "Widget/orphan is expected to replace each evicted pod" in out.getvalue(), out.getvalue()
    rollout = Rollout.objects.get(kind="Widget", name="orphan")
    assert rollout.status == "in_progress", rollout.message
    assert target == Target.of(rollout)
    [evicted] = rollout.evicted
    rollout = follow(rollout, timeout=60)

    assert rollout.status == "stuck", rollout.message
    assert "not complete 5s after it started" in rollout.message and evicted["name"] in rollout.message
    assert len(owned_pods(kube, owner)) == 1, "the second stale pod was evicted although the first was not replaced"
    [ended] = AuditEvent.objects.filter(action="rollout.failed", object_name="orphan")
    assert ended.detail["status"] == "stuck" and ended.detail["evicted"] == [evicted["name"]]


def test_a_bare_pod_stays_refused(kube, cluster):
    kube.config_map("solo-config", {"mode": "a"})
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": "solo-config"}}]}
    kube.core.create_namespaced_pod(kube.namespace, {"metadata": {"name": "solo"}, "spec": {"containers": [container]}})
    snapshot()
    rollout, _ = request_eviction(cluster, Target("Pod", kube.namespace, "solo"), "olga")
    assert rollout.status == "refused"
    assert "A bare Pod cannot be rolled out: no controller recreates it" in rollout.message
