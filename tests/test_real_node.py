"""The real node of the local cluster (scripts/realnode): a real kubelet and containerd beside kwok's simulated
nodes. The seed's experiment, checked with kubectl on real containers: env stays as started, a ConfigMap
volume is rewritten by the kubelet within its sync period, a subPath file never changes."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.kube_helpers import Kube, deployment, parse_env, wait_until

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parent.parent
REAL_NODE_LABEL = ("driftwatch.io/node", "real")
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
TOOLBOX = "driftwatch.local/toolbox:1"
# Ends on SIGTERM: a plain `sleep` as PID 1 ignores it and makes every deletion wait for the grace period.
SLEEP = ["sh", "-c", "echo started; trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
# The kubelet re-syncs a pod every syncFrequency (1m) plus up to 50% jitter: 90 s at most, plus margin for a
# loaded machine (26 to 84 s observed on 2 busy cores).
VOLUME_REFRESH_LIMIT = 110


def toolbox(name: str = "app", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": TOOLBOX, "imagePullPolicy": "Never", "command": SLEEP, **extra}


def on_real_node(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a pod needs to land on the real node: the label, the taint's toleration, a local image."""
    key, value = REAL_NODE_LABEL
    manifest["spec"]["template"]["spec"].update(
        nodeSelector={key: value},
        tolerations=[{"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}],
        automountServiceAccountToken=False,
        terminationGracePeriodSeconds=2,
    )
    return manifest


def kubectl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "cluster"), "kubectl", *args], capture_output=True, text=True, timeout=timeout
    )


def exec_in(kube: Kube, pod: str, *command: str) -> str:
    """`kubectl exec`: API server → kubelet (client certificate of the cluster's CA) → containerd."""
    result = kubectl("-n", kube.namespace, "exec", pod, "--", *command)
    assert result.returncode == 0, f"kubectl exec {pod} -- {' '.join(command)} failed: {result.stderr}"
    return result.stdout


def running_pod(kube: Kube, app: str) -> k8s.V1Pod:
    kube.wait_deployment_ready(app)
    [pod] = kube.ready_pods(app)
    return pod


def real_node_owner() -> Path | None:
    """The cluster folder whose real node runs on this machine (scripts/realnode keeps one per machine)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "driftwatch" / "realnode.owner"
    try:
        owner = Path(cache.read_text().strip())
        os.kill(int((owner / "node" / "kubelet.pid").read_text()), 0)
    except (OSError, ValueError):
        return None
    return owner


@pytest.fixture(scope="module")
def real_node(kube_api: k8s.ApiClient) -> k8s.V1Node:
    return find_real_node(kube_api)


def find_real_node(kube_api: k8s.ApiClient) -> k8s.V1Node:
    """The node labelled driftwatch.io/node=real; fails (or skips, when another cluster of the machine
    holds it) without one."""
    key, value = REAL_NODE_LABEL
    nodes = k8s.CoreV1Api(kube_api).list_node(label_selector=f"{key}={value}").items
    if not nodes:
        owner = real_node_owner()
        if owner and owner != ROOT / ".cluster":
            pytest.skip(f"the machine's one real node runs for the cluster in {owner}")
        status = subprocess.run([str(ROOT / "scripts" / "cluster"), "status"], capture_output=True, text=True)
        pytest.fail(f"the local cluster has no node labelled {key}={value}:\n{status.stdout}", pytrace=False)
    [node] = nodes
    return node


def test_the_real_node_is_ready_labelled_tainted_and_not_kwoks(kube_api, real_node):
    conditions = {condition.type: condition.status for condition in real_node.status.conditions}
    assert conditions["Ready"] == "True"
    assert KWOK_ANNOTATION not in (real_node.metadata.annotations or {})
    assert [(t.key, t.value, t.effect) for t in real_node.spec.taints or []] == [(*REAL_NODE_LABEL, "NoSchedule")]
    assert real_node.status.node_info.container_runtime_version.startswith("containerd://")
    simulated = [
        node for node in k8s.CoreV1Api(kube_api).list_node().items if node.metadata.name != real_node.metadata.name
    ]
    assert simulated, "the simulated nodes are still there"
    assert all(node.metadata.annotations.get(KWOK_ANNOTATION) == "fake" for node in simulated)
    assert all(REAL_NODE_LABEL[0] not in (node.metadata.labels or {}) for node in simulated)


def test_the_running_node_leaves_the_hosts_folders_and_iptables_alone(real_node):
    # Where a kubelet and containerd write by default: here only inside their private mount namespace.
    for path in ("/var/lib/kubelet", "/var/lib/containerd", "/run/containerd", "/var/log/pods", "/var/lib/cni"):
        assert not Path(path).exists(), f"{path} exists on the host"
    for save in ("iptables-save", "iptables-legacy-save"):
        rules = subprocess.run([save], capture_output=True, text=True)
        assert "KUBE-" not in rules.stdout, f"{save} shows a kubelet chain"


def test_a_pod_runs_the_toolbox_image_and_exec_and_logs_go_through_the_api_server(kube, real_node):
    kube.create_deployment(on_real_node(deployment("toolbox", [toolbox()])))
    pod = running_pod(kube, "toolbox")

    assert pod.spec.node_name == real_node.metadata.name
    [status] = pod.status.container_statuses
    assert status.image == TOOLBOX and status.state.running
    assert status.container_id.startswith("containerd://"), "a container of containerd, not a pod kwok pretends runs"
    assert "root:x:0:0" in exec_in(kube, pod.metadata.name, "cat", "/etc/passwd")
    assert exec_in(kube, pod.metadata.name, "sh", "-c", "echo $((6 * 7))").strip() == "42"
    assert "started" in kubectl("-n", kube.namespace, "logs", pod.metadata.name).stdout
    # The kubelet stand-in leaves pods of the real node alone: no kwok Exec object for this pod.
    with pytest.raises(ApiException) as missing:
        kube.custom.get_namespaced_custom_object(
            "kwok.x-k8s.io", "v1alpha1", kube.namespace, "execs", pod.metadata.name
        )
    assert missing.value.status == 404


def test_a_pod_that_does_not_ask_for_the_real_node_lands_on_a_simulated_one(kube, real_node):
    kube.create_deployment(deployment("web", [{"name": "app", "image": "nginx:1.27"}], replicas=3))
    kube.wait_deployment_ready("web")
    nodes = {pod.spec.node_name for pod in kube.ready_pods("web")}
    assert real_node.metadata.name not in nodes


def test_the_seeds_experiment_env_stays_volume_refreshes_subpath_never(kube, real_node):
    kube.config_map("special-config", {"log_level": "INFO"})
    container = toolbox(
        envFrom=[{"configMapRef": {"name": "special-config"}}],
        volumeMounts=[
            {"name": "config", "mountPath": "/etc/config"},
            {"name": "config", "mountPath": "/etc/sub/log_level", "subPath": "log_level"},
        ],
    )
    volumes = [{"name": "config", "configMap": {"name": "special-config"}}]
    kube.create_deployment(on_real_node(deployment("seed", [container], volumes=volumes)))
    pod = running_pod(kube, "seed").metadata.name
    assert parse_env(exec_in(kube, pod, "env"))["log_level"] == "INFO"
    assert exec_in(kube, pod, "cat", "/etc/config/log_level") == "INFO"
    assert exec_in(kube, pod, "cat", "/etc/sub/log_level") == "INFO"

    edited_at = time.time()
    kube.edit_config_map("special-config", {"log_level": "DEBUG"})
    wait_until(
        lambda: exec_in(kube, pod, "cat", "/etc/config/log_level") == "DEBUG",
        timeout=VOLUME_REFRESH_LIMIT,
        interval=1,
        what="the kubelet to rewrite the ConfigMap volume",
    )
    # The kubelet re-points `..data` at a new timestamped folder: the link's own time is the refresh.
    refreshed_at = int(exec_in(kube, pod, "stat", "-c", "%Y", "/etc/config/..data"))
    print(f"volume refreshed {refreshed_at - edited_at:.0f} s after the edit ({datetime.now(UTC):%H:%M:%S})")
    assert refreshed_at >= int(edited_at)

    # The kubelet has re-synced this very pod, and still: env as started, the subPath file as mounted.
    assert parse_env(exec_in(kube, pod, "env"))["log_level"] == "INFO"
    assert exec_in(kube, pod, "cat", "/etc/sub/log_level") == "INFO"
    # The subPath mount is a bind mount of the first version's file (in its `..<timestamp>` folder), which
    # the kubelet has deleted since: mountinfo's root field says so.
    [sub_mount] = [
        line for line in exec_in(kube, pod, "cat", "/proc/self/mountinfo").splitlines() if " /etc/sub/" in line
    ]
    mounted_file = sub_mount.split()[3]
    assert "/..20" in mounted_file and mounted_file.endswith("//deleted"), sub_mount


def test_odd_keys_are_files_a_shell_can_read(kube, real_node):
    data = {"-n": "dash n", "--help": "dash dash help", "plain": "a", "spaced": "with space", "unicode": "ünïcødé ✓"}
    kube.config_map("odd", data)
    # Keys themselves are limited to [-._a-zA-Z0-9]; spaces and unicode reach files through `items[].path`.
    with pytest.raises(ApiException) as refused:
        kube.config_map("refused", {"with space": "x"})
    assert refused.value.status == 422
    items = [
        {"key": "-n", "path": "-n"},
        {"key": "--help", "path": "--help"},
        {"key": "plain", "path": "plain"},
        {"key": "spaced", "path": "a file with spaces.conf"},
        {"key": "unicode", "path": "ünïcødé.conf"},
    ]
    container = toolbox(volumeMounts=[{"name": "odd", "mountPath": "/etc/odd"}])
    volumes = [{"name": "odd", "configMap": {"name": "odd", "items": items}}]
    kube.create_deployment(on_real_node(deployment("odd", [container], volumes=volumes)))
    pod = running_pod(kube, "odd").metadata.name

    # busybox `ls` prints each non-ASCII byte as `?`: names are listed by the shell itself.
    listed = exec_in(kube, pod, "sh", "-c", 'for f in /etc/odd/*; do printf "%s\\n" "${f#/etc/odd/}"; done')
    assert set(listed.splitlines()) == {item["path"] for item in items}
    for item in items:
        assert exec_in(kube, pod, "cat", "--", f"/etc/odd/{item['path']}") == data[item["key"]]
    # Read the way a shell loop over the folder does, each name quoted.
    script = 'for f in /etc/odd/*; do printf "%s=" "${f#/etc/odd/}"; cat -- "$f"; echo; done'
    read_back = dict(line.split("=", 1) for line in exec_in(kube, pod, "sh", "-c", script).splitlines())
    assert read_back == {item["path"]: data[item["key"]] for item in items}
