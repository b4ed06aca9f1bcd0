"""Small helpers for tests against the local cluster: plain dict manifests in, plain waits out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException


def wait_until(condition: Callable[[], Any], timeout: float = 90, interval: float = 0.5, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (ApiException, AssertionError) as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}; last error: {last_error}")


def deployment(
    name: str,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]] | None = None,
    replicas: int = 1,
    init_containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers, "volumes": volumes or []}
    if init_containers:
        spec["initContainers"] = init_containers
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


class Kube:
    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)

    def config_map(self, name: str, data: dict[str, str], **extra: Any) -> dict[str, Any]:
        body = {"metadata": {"name": name}, "data": data, **extra}
        return self.api.sanitize_for_serialization(self.core.create_namespaced_config_map(self.namespace, body))

    def edit_config_map(self, name: str, data: dict[str, str]) -> None:
        self.core.patch_namespaced_config_map(name, self.namespace, {"data": data})

    def secret(self, name: str, string_data: dict[str, str]) -> None:
        self.core.create_namespaced_secret(self.namespace, {"metadata": {"name": name}, "stringData": string_data})

    def edit_secret(self, name: str, string_data: dict[str, str]) -> None:
        self.core.patch_namespaced_secret(name, self.namespace, {"stringData": string_data})

    def create_deployment(self, manifest: dict[str, Any]) -> None:
        self.apps.create_namespaced_deployment(self.namespace, manifest)

    def wait_deployment_ready(self, name: str, timeout: float = 120) -> k8s.V1Deployment:
        def done() -> k8s.V1Deployment | None:
            found = self.apps.read_namespaced_deployment_status(name, self.namespace)
            status, wanted = found.status, found.spec.replicas
            complete = (
                status.observed_generation == found.metadata.generation
                and (status.updated_replicas or 0) == wanted
                and (status.ready_replicas or 0) == wanted
                and (status.available_replicas or 0) == wanted
                and (status.replicas or 0) == wanted
            )
            return found if complete else None

        return wait_until(done, timeout, what=f"deployment {name} ready")

    def pods(self, app: str) -> list[k8s.V1Pod]:
        found = self.core.list_namespaced_pod(self.namespace, label_selector=f"app={app}").items
        return [pod for pod in found if not pod.metadata.deletion_timestamp]

    def ready_pods(self, app: str) -> list[k8s.V1Pod]:
        return [pod for pod in self.pods(app) if _ready(pod)]

    def replica_sets(self, app: str) -> list[k8s.V1ReplicaSet]:
        return self.apps.list_namespaced_replica_set(self.namespace, label_selector=f"app={app}").items

    def patch_template_annotation(self, name: str, key: str, value: str) -> None:
        patch = {"spec": {"template": {"metadata": {"annotations": {key: value}}}}}
        self.apps.patch_namespaced_deployment(name, self.namespace, patch)

    def wait_exec_ready(self, pod: str) -> None:
        """The kubelet stand-in writes a pod's environment when the pod is bound; wait for it."""
        wait_until(
            lambda: self.custom.get_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", self.namespace, "execs", pod),
            timeout=60,
            what=f"exec environment of {pod}",
        )


def _ready(pod: k8s.V1Pod) -> bool:
    conditions = (pod.status and pod.status.conditions) or []
    return any(condition.type == "Ready" and condition.status == "True" for condition in conditions)


def parse_env(output: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line)
    return dict(pairs)


def service_account_kubeconfig(
    api: k8s.ApiClient, admin_kubeconfig: Path, namespace: str, name: str, path: Path
) -> Path:
    """A kubeconfig that acts as ServiceAccount `name` (a real token from the TokenRequest API), so
    tests meet the API server's own RBAC answers."""
    core = k8s.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    token = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": name,
                "clusters": [{"name": "local", "cluster": cluster}],
                "users": [{"name": name, "user": {"token": token}}],
                "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}],
            }
        )
    )
    return path


def grant(api: k8s.ApiClient, namespace: str, service_account_namespace: str, name: str, rules: list[dict]) -> None:
    """A Role with `rules` in `namespace`, bound to the ServiceAccount."""
    rbac = k8s.RbacAuthorizationV1Api(api)
    role = f"{name}-role"
    rbac.create_namespaced_role(namespace, {"metadata": {"name": role}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": f"{name}-binding"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": service_account_namespace}],
        },
    )


def grant_cluster_wide(api: k8s.ApiClient, service_account_namespace: str, name: str, rules: list[dict]) -> str:
    """A ClusterRole bound cluster-wide; returns its name so the test can delete it (it outlives namespaces)."""
    rbac = k8s.RbacAuthorizationV1Api(api)
    role = f"{service_account_namespace}-{name}"
    rbac.create_cluster_role({"metadata": {"name": role}, "rules": rules})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": service_account_namespace}],
        }
    )
    return role


def delete_cluster_grant(api: k8s.ApiClient, role: str) -> None:
    rbac = k8s.RbacAuthorizationV1Api(api)
    rbac.delete_cluster_role_binding(role)
    rbac.delete_cluster_role(role)


def wait_other_test_namespaces_gone(api: k8s.ApiClient, keep: str, timeout: float = 120) -> None:
    """Namespaces of earlier tests are deleted in the background; a test that needs a quiet cluster
    (nothing changing anywhere) waits for them to go."""
    core = k8s.CoreV1Api(api)

    def quiet() -> bool:
        found = core.list_namespace(label_selector="driftwatch.io/test=true").items
        return all(namespace.metadata.name == keep for namespace in found)

    wait_until(quiet, timeout=timeout, interval=1, what="earlier test namespaces to be deleted")
