"""The local control plane behaves like a cluster where it matters to Driftwatch: controllers roll out,
pods become Ready on simulated nodes, and `exec env` shows the environment fixed at container start."""

import pytest
from kubernetes import client as k8s

from drift.kube import ClusterCredentials, KubeClient
from tests.kube_helpers import deployment, parse_env, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture
def product_client(kubeconfig):
    with KubeClient(ClusterCredentials(str(kubeconfig))) as client:
        yield client


def env_deployment(name: str, config_map: str, replicas: int = 1) -> dict:
    container = {"name": "app", "image": "nginx:1.27", "envFrom": [{"configMapRef": {"name": config_map}}]}
    return deployment(name, [container], replicas=replicas)


def test_it_has_at_least_two_ready_nodes(kube_api):
    nodes = k8s.CoreV1Api(kube_api).list_node().items
    ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
    assert len(ready) >= 2


def test_a_deployment_becomes_ready(kube):
    kube.config_map("app-config", {"log_level": "INFO"})
    kube.create_deployment(env_deployment("web", "app-config", replicas=3))
    kube.wait_deployment_ready("web")
    pods = kube.ready_pods("web")
    assert len(pods) == 3
    assert all(pod.spec.node_name for pod in pods)
    assert all(pod.status.phase == "Running" for pod in pods)


def test_an_annotation_patch_rolls_out_a_new_replica_set(kube):
    kube.config_map("app-config", {"log_level": "INFO"})
    kube.create_deployment(env_deployment("web", "app-config", replicas=2))
    kube.wait_deployment_ready("web")
    old_pods = {pod.metadata.name for pod in kube.ready_pods("web")}
    [old_rs] = kube.replica_sets("web")

    kube.patch_template_annotation("web", "version/config", "20180411")

    wait_until(lambda: len(kube.replica_sets("web")) == 2, what="a second ReplicaSet")
    kube.wait_deployment_ready("web")
    new_rs = next(rs for rs in kube.replica_sets("web") if rs.metadata.name != old_rs.metadata.name)
    assert new_rs.spec.template.metadata.annotations == {"version/config": "20180411"}
    wait_until(lambda: {p.metadata.name for p in kube.pods("web")}.isdisjoint(old_pods), what="old pods gone")
    new_pods = kube.ready_pods("web")
    assert len(new_pods) == 2
    assert all(p.metadata.owner_references[0].name == new_rs.metadata.name for p in new_pods)


def test_exec_env_keeps_the_start_time_value_after_the_config_map_changes(kube, product_client):
    kube.config_map("env-config", {"log_level": "INFO"})
    kube.create_deployment(env_deployment("env-demo", "env-config"))
    kube.wait_deployment_ready("env-demo")
    [pod] = kube.ready_pods("env-demo")
    kube.wait_exec_ready(pod.metadata.name)

    before = parse_env(product_client.exec_in_container(kube.namespace, pod.metadata.name, "app", ["env"], 10))
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})
    after = parse_env(product_client.exec_in_container(kube.namespace, pod.metadata.name, "app", ["env"], 10))

    assert before["log_level"] == "INFO"
    assert after["log_level"] == "INFO", "env from a ConfigMap must not change inside a running container"
    assert after["HOSTNAME"] == pod.metadata.name


def test_a_pod_started_after_the_edit_sees_the_new_value(kube, product_client):
    kube.config_map("env-config", {"log_level": "INFO"})
    kube.create_deployment(env_deployment("env-demo", "env-config"))
    kube.wait_deployment_ready("env-demo")
    kube.edit_config_map("env-config", {"log_level": "DEBUG"})

    kube.patch_template_annotation("env-demo", "version/config", "2")
    wait_until(lambda: len(kube.replica_sets("env-demo")) == 2, what="a second ReplicaSet")
    kube.wait_deployment_ready("env-demo")
    [pod] = wait_until(lambda: len(kube.pods("env-demo")) == 1 and kube.ready_pods("env-demo"), what="one new pod")
    kube.wait_exec_ready(pod.metadata.name)

    env = parse_env(product_client.exec_in_container(kube.namespace, pod.metadata.name, "app", ["env"], 10))
    assert env["log_level"] == "DEBUG"


def test_exec_env_resolves_key_refs_secrets_and_prefixes(kube, product_client):
    kube.config_map("app-config", {"log_level": "INFO", "mode": "fast"})
    kube.secret("app-secret", {"token": "s3cr3t"})
    container = {
        "name": "app",
        "image": "nginx:1.27",
        "envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "APP_"}],
        "env": [
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "log_level"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "token"}}},
            {"name": "GREETING", "value": "level=$(LEVEL)"},
        ],
    }
    kube.create_deployment(deployment("keyrefs", [container]))
    kube.wait_deployment_ready("keyrefs")
    [pod] = kube.ready_pods("keyrefs")
    kube.wait_exec_ready(pod.metadata.name)

    env = parse_env(product_client.exec_in_container(kube.namespace, pod.metadata.name, "app", ["env"], 10))
    assert env["APP_log_level"] == "INFO"
    assert env["APP_mode"] == "fast"
    assert env["LEVEL"] == "INFO"
    assert env["TOKEN"] == "s3cr3t"
    assert env["GREETING"] == "level=INFO"
