"""`make install-local` for real: the chart installed into namespace `driftwatch` of the local cluster, its pods on
the real node, Driftwatch registered with its own service account and working with only the chart's RBAC.

Run by `make test-install` (CI runs it after the main suite): the tests install (or upgrade, a no-op when nothing
changed) through scripts/install-local themselves. They skip, saying why, when the machine's real node runs for
another checkout's cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.kube_helpers import deployment, wait_until

pytestmark = [pytest.mark.install, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "driftwatch"
RELEASE = "driftwatch"
WEB = "http://127.0.0.1:18000"  # deploy/helm/local-values.yaml: web.port, on the host's network
AUDIT_RECEIVER = "http://127.0.0.1:18443"  # auditReceiver.port there
WEB_ROLE = "driftwatch-web"  # the web process's ClusterRole: the release's full name and the process
TOOLBOX = "driftwatch.local/toolbox:1"


def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(ROOT / ".cluster" / "kubeconfig")}
    result = subprocess.run(args, input=input, capture_output=True, text=True, cwd=ROOT, env=env)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}", pytrace=False)
    return result


def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return run(str(ROOT / "scripts" / "cluster"), "kubectl", *args, input=input, check=check)


def manage(
    *args: str, input: str | None = None, check: bool = True, process: str = "worker"
) -> subprocess.CompletedProcess:
    """`manage.py ARGS` inside an in-cluster pod of `process`: Driftwatch as installed, with that process's own
    service account (a snapshot needs the worker's: the web's may neither list nor exec)."""
    return kubectl("-n", NAMESPACE, "exec", "-i", f"deploy/driftwatch-{process}", "--", "python", "manage.py", *args,
                   input=input, check=check)  # fmt: skip


def release_database_url() -> str:
    result = run(str(ROOT / ".venv" / "bin" / "python"), "-c",
                 "import os; from urllib.parse import urlsplit; u = urlsplit(os.environ.get('DATABASE_URL', "
                 "'postgres://driftwatch:driftwatch@127.0.0.1:5432/driftwatch')); "
                 "print(u._replace(path=u.path + '_incluster').geturl())")  # fmt: skip
    return result.stdout.strip()


def query(sql: str, *params: Any) -> list[tuple]:
    with psycopg.connect(release_database_url()) as connection:
        return connection.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def installed(kubeconfig: Path) -> dict[str, Any]:
    status = run(str(ROOT / "scripts" / "cluster"), "status", check=False).stdout
    if not re.search(r"^real node .*: running", status, re.MULTILINE):
        pytest.skip("the machine's real node does not run for this checkout's cluster: nowhere to install")
    started = time.monotonic()
    run(str(ROOT / "scripts" / "install-local"))
    return {"seconds": time.monotonic() - started}


@pytest.fixture(scope="module")
def kube_api(installed: dict, kubeconfig: Path) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def real_node_app(kube_api: k8s.ApiClient) -> Iterator[tuple[str, str]]:
    """A namespace with a Deployment on the real node reading a ConfigMap through envFrom."""
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": namespace, "labels": {"driftwatch.io/test": "true"}}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "app-config"}, "data": {"level": "INFO"}})
    container = {
        "name": "app", "image": TOOLBOX, "imagePullPolicy": "Never", "command": ["sleep", "3600"],
        "envFrom": [{"configMapRef": {"name": "app-config"}}],
    }  # fmt: skip
    manifest = deployment("app", [container])
    manifest["spec"]["template"]["spec"] |= {
        "nodeSelector": {"driftwatch.io/node": "real"},
        "tolerations": [{"key": "driftwatch.io/node", "operator": "Equal", "value": "real", "effect": "NoSchedule"}],
        "terminationGracePeriodSeconds": 0,
    }
    k8s.AppsV1Api(kube_api).create_namespaced_deployment(namespace, manifest)
    wait_until(
        lambda: (k8s.AppsV1Api(kube_api).read_namespaced_deployment("app", namespace).status.ready_replicas or 0) >= 1,
        timeout=180, what="the real node's app Ready",
    )  # fmt: skip
    yield namespace, "app"
    core.delete_namespace(namespace, propagation_policy="Background")


def snapshot_in_cluster(cluster: str = "in-cluster") -> str:
    return manage("snapshot", "--cluster", cluster).stdout.strip()


def web_session() -> requests.Session:
    """Logged in to the in-cluster web server as an operator made for this test (password on stdin)."""
    username, password = f"t{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    manage("adduser", username, "--role", "operator", "--namespace", "*/*", input=password + "\n")
    session = requests.Session()
    page = session.get(f"{WEB}/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(f"{WEB}/login/", data={"username": username, "password": password,
                                                 "csrfmiddlewaretoken": token}, timeout=30)  # fmt: skip
    assert answer.ok and "/login/" not in answer.url, answer.text[:500]
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def test_the_pods_become_ready_on_the_real_node(installed, kube_api):
    apps = k8s.AppsV1Api(kube_api)
    deployments = apps.list_namespaced_deployment(NAMESPACE).items
    assert {d.metadata.name for d in deployments} == {
        f"driftwatch-{process}" for process in ("web", "worker", "beat", "watcher", "audit")
    }
    for item in deployments:
        assert item.status.ready_replicas == item.spec.replicas, item.metadata.name
    node = run("hostname").stdout.strip()
    pods = k8s.CoreV1Api(kube_api).list_namespaced_pod(NAMESPACE).items
    assert {pod.spec.node_name for pod in pods if pod.status.phase == "Running"} == {node}
    ready = requests.get(f"{WEB}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    print(f"install-local to first snapshot: {installed['seconds']:.0f} s")


def test_the_in_cluster_worker_snapshots_with_only_the_charts_rbac(installed, kube_api):
    [(in_cluster, read_only, namespaces)] = query(
        "SELECT in_cluster, read_only, namespaces FROM drift_cluster WHERE name = 'in-cluster'"
    )
    assert (in_cluster, read_only, namespaces) == (True, False, [])
    runs = query(
        "SELECT r.status, r.error FROM drift_snapshotrun r JOIN drift_cluster c ON c.id = r.cluster_id "
        "WHERE c.name = 'in-cluster' AND r.status <> 'running' ORDER BY r.id DESC LIMIT 1"
    )
    assert runs and runs[0][0] == "succeeded", runs


# What each process's account may do, asked of the API server itself (`kubectl auth can-i --as`), in every namespace.
ACCOUNT_CAN = {
    "web": [
        ("get", "secrets", "yes"), ("list", "pods", "yes"), ("patch", "deployments.apps", "yes"),
        ("patch", "daemonsets.apps", "yes"), ("get", "statefulsets.apps", "yes"),
        # a ConfigMap restore (drift/restore.py) and "Restart the stale pods only" (drift/rollout/evict.py)
        ("update", "configmaps", "yes"), ("create", "pods --subresource=eviction", "yes"),
        # an Argo Rollout (drift/rollout/kinds.py): can-i answers for a resource whose CRD is not installed too
        ("get", "rollouts.argoproj.io", "yes"), ("patch", "rollouts.argoproj.io", "yes"),
        ("list", "rollouts.argoproj.io", "no"),
        # Run now (drift/rollout/run_now.py): a Job from a CronJob's jobTemplate
        ("get", "cronjobs.batch", "yes"), ("create", "jobs.batch", "yes"), ("delete", "jobs.batch", "no"),
        ("update", "cronjobs.batch", "no"),
        ("list", "secrets", "no"), ("list", "configmaps", "no"), ("create", "pods --subresource=exec", "no"),
        ("get", "pods --subresource=exec", "no"), ("watch", "secrets", "no"), ("list", "nodes", "no"),
        ("delete", "pods", "no"), ("create", "deployments.apps", "no"), ("update", "secrets", "no"),
    ],
    "worker": [
        ("list", "secrets", "yes"), ("list", "replicasets.apps", "yes"), ("list", "jobs.batch", "yes"),
        ("list", "cronjobs.batch", "yes"), ("create", "jobs.batch", "no"),
        ("list", "nodes", "yes"), ("create", "pods --subresource=exec", "yes"), ("get", "pods --subresource=exec", "yes"),
        ("patch", "deployments.apps", "yes"), ("patch", "rollouts.argoproj.io", "yes"),
        ("watch", "secrets", "no"), ("delete", "pods", "no"), ("update", "configmaps", "no"),
        ("create", "deployments.apps", "no"),
    ],
    "watcher": [
        ("list", "configmaps", "yes"), ("watch", "configmaps", "yes"), ("list", "secrets", "yes"),
        ("watch", "secrets", "yes"),
        # the pod watch, its owners and nodes, and the probes it plans from events (drift/snapshot/podwatch.py)
        ("list", "pods", "yes"), ("watch", "pods", "yes"), ("list", "replicasets.apps", "yes"),
        ("list", "nodes", "yes"), ("create", "pods --subresource=exec", "yes"),
        ("get", "secrets", "no"), ("patch", "deployments.apps", "no"), ("patch", "rollouts.argoproj.io", "no"),
        ("delete", "pods", "no"),
        ("update", "configmaps", "no"),
    ],
    "register": [("list", "pods", "no"), ("get", "secrets", "no"), ("create", "pods --subresource=exec", "no")],
    # Beat and the audit receiver have no account of their own and mount no token: the namespace's default account
    # is what a pod without one would run as, and it may do nothing.
    "default": [("list", "secrets", "no"), ("create", "pods --subresource=exec", "no"), ("get", "secrets", "no")],
}  # fmt: skip


def test_each_process_account_may_do_what_its_process_calls_and_nothing_more(installed):
    refused = []
    for process, checks in ACCOUNT_CAN.items():
        name = process if process == "default" else f"driftwatch-{process}"
        for verb, resource, allowed in checks:
            answer = kubectl("auth", "can-i", verb, *resource.split(), "--all-namespaces",
                             "--as", f"system:serviceaccount:{NAMESPACE}:{name}", check=False)  # fmt: skip
            if answer.stdout.strip() != allowed:
                refused.append((process, verb, resource, answer.stdout.strip(), allowed))
    assert refused == [], refused


def test_only_the_processes_that_call_the_api_mount_a_token(installed, kube_api):
    pods = k8s.CoreV1Api(kube_api).list_namespaced_pod(NAMESPACE).items
    mounted = {}
    for pod in pods:
        if pod.status.phase != "Running":
            continue
        component = pod.metadata.labels["app.kubernetes.io/component"]
        volumes = [volume.name for volume in pod.spec.volumes or []]
        mounted[component] = (pod.spec.service_account_name, any(v.startswith("kube-api-access") for v in volumes))
    assert mounted == {
        "web": ("driftwatch-web", True),
        "worker": ("driftwatch-worker", True),
        "watcher": ("driftwatch-watcher", True),
        "beat": ("default", False),
        "audit": ("default", False),
    }


def test_the_audit_receiver_answers_on_its_own_port_and_the_web_port_does_not_serve_it(installed):
    assert requests.get(f"{AUDIT_RECEIVER}/healthz", timeout=10).status_code == 200
    unauthenticated = requests.post(f"{AUDIT_RECEIVER}/kubernetes-audit/in-cluster", json={}, timeout=10)
    assert unauthenticated.status_code == 401, unauthenticated.text
    for path in ("/", "/login/", "/admin/", "/metrics"):
        answer = requests.get(f"{AUDIT_RECEIVER}{path}", timeout=10, allow_redirects=False)
        assert answer.status_code == 404, (path, answer.status_code)
    assert requests.post(f"{WEB}/kubernetes-audit/in-cluster", json={}, timeout=10).status_code == 404


def test_a_rollout_from_the_in_cluster_driftwatch_patches_a_workload(installed, kube_api, real_node_app):
    namespace, name = real_node_app
    assert "succeeded" in snapshot_in_cluster()
    report = json.loads(manage("driftreport", "--json", "--cluster", "in-cluster", "--namespace", namespace).stdout)
    [row] = [r for r in report if r["source"]["name"] == "app-config"]
    assert (row["verdict"], row["evidence"]) == ("fresh", "observed"), row["reason"]  # exec with the chart's RBAC
    k8s.CoreV1Api(kube_api).patch_namespaced_config_map("app-config", namespace, {"data": {"level": "DEBUG"}})
    assert "succeeded" in snapshot_in_cluster()
    # The rollout path runs in the web process (the confirmation panel, Confirm rollout): with the web's account.
    output = manage(
        "rollout", f"deployment/{name}", "-n", namespace, "--cluster", "in-cluster", "--actor", "test", process="web"
    )
    annotations = (
        k8s.AppsV1Api(kube_api).read_namespaced_deployment(name, namespace).spec.template.metadata.annotations or {}
    )
    assert "driftwatch.io/config-hash" in annotations, output.stdout
    actors = query(
        "SELECT actor FROM drift_auditevent WHERE action = 'rollout.requested' AND namespace = %s", namespace
    )
    assert actors == [("test",)]


@pytest.fixture
def patch_removed(installed, kube_api) -> Iterator[None]:
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    original = kube_api.sanitize_for_serialization(rbac.read_cluster_role(WEB_ROLE).rules)
    without_patch = [{**rule, "verbs": [verb for verb in rule["verbs"] if verb != "patch"]} for rule in original]
    rbac.patch_cluster_role(WEB_ROLE, {"rules": without_patch})
    yield
    rbac.patch_cluster_role(WEB_ROLE, {"rules": original})


def test_without_patch_in_the_cluster_role_the_ui_names_the_missing_permission(
    installed, kube_api, real_node_app, patch_removed
):
    namespace, name = real_node_app
    assert "succeeded" in snapshot_in_cluster()
    [(workload_id,)] = query(
        "SELECT w.id FROM drift_workload w JOIN drift_cluster c ON c.id = w.cluster_id "
        "WHERE c.name = 'in-cluster' AND w.namespace = %s AND w.name = %s AND w.kind = 'Deployment'",
        namespace, name,
    )  # fmt: skip
    session = web_session()
    answer = session.post(f"{WEB}/rollouts/plan/", data={"workload": workload_id}, timeout=60)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.text))
    assert f"patch deployments.apps in {namespace}" in text, text[:2000]
    annotations = (
        k8s.AppsV1Api(kube_api).read_namespaced_deployment(name, namespace).spec.template.metadata.annotations or {}
    )
    assert "driftwatch.io/config-hash" not in annotations


@pytest.fixture
def namespaced_release(installed, kube_api, real_node_app) -> Iterator[str]:
    """The release switched to namespaced mode for the test app's namespace only, and a cluster `scoped`
    registered in it with that list; back to cluster-wide afterwards."""
    namespace, _ = real_node_app
    helm = str(ROOT / "scripts" / "helm")
    chart = str(ROOT / "deploy" / "helm" / "driftwatch")
    common = ["upgrade", RELEASE, chart, "-n", NAMESPACE, "--reuse-values", "--wait", "--timeout", "5m"]
    run(helm, *common, "--set", "rbac.mode=namespaced", "--set", f"rbac.namespaces={{{namespace}}}")
    try:
        manage("cluster", "add", "scoped", "--in-cluster", "--namespace", namespace)
        yield namespace
    finally:
        manage("cluster", "remove", "scoped", check=False)
        run(helm, *common, "--set", "rbac.mode=cluster", "--set", "rbac.namespaces=null")


def test_in_namespaced_mode_a_namespace_outside_the_list_is_reported_as_not_visible(kube_api, namespaced_release):
    namespace = namespaced_release
    assert (
        k8s.RbacAuthorizationV1Api(kube_api)
        .list_cluster_role(label_selector=f"app.kubernetes.io/instance={RELEASE}")
        .items
        == []
    )
    assert "succeeded" in snapshot_in_cluster("scoped")
    seen = {row[0] for row in query(
        "SELECT DISTINCT p.namespace FROM drift_pod p JOIN drift_cluster c ON c.id = p.cluster_id WHERE c.name = 'scoped'"
    )}  # fmt: skip
    assert seen == {namespace}
    page = web_session().get(f"{WEB}/", params={"cluster": "scoped", "namespace": NAMESPACE}, timeout=60).text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert f"Namespace {NAMESPACE} is not visible in scoped" in text, text[:2000]
