"""A stand-in for the part of the kubelet that Driftwatch can see: the environment of a container.

Test and demo harness only, never part of the product. kwok simulates nodes without a container
runtime, and answers `kubectl exec` by running the command on the host with the environment listed
in a kwok `Exec` object. This process watches pods; when a pod is bound to a node (the moment a real
kubelet would create its containers) it resolves each container's environment from the ConfigMaps
and Secrets as they are at that moment and writes it into an `Exec` owned by the pod. Editing a
ConfigMap later changes nothing for that pod, exactly as on a real kubelet: env is fixed at start.

Pods bound to the real node (label `driftwatch.io/node=real`, run by scripts/realnode) are left alone:
a real kubelet runs them, and `kubectl exec` reaches their containers.

What it cannot show: files. A simulated container has no filesystem; `exec cat /etc/config/x` runs
on the host and sees the host's files, so Driftwatch does not probe files on kwok nodes.
"""

from __future__ import annotations

import argparse
import base64
import logging
import re
import signal
import sys
import time
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

EXEC_GROUP, EXEC_VERSION, EXEC_PLURAL = "kwok.x-k8s.io", "v1alpha1", "execs"
POD_UID_LABEL = "driftwatch.io/standin-pod-uid"
REAL_NODE_LABEL, REAL_NODE_VALUE = "driftwatch.io/node", "real"
VARIABLE_REFERENCE = re.compile(r"\$\(([^)]+)\)")

log = logging.getLogger("kubelet-standin")


class Resolver:
    """Reads ConfigMaps and Secrets the way the kubelet does when it starts a container."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            return self.core.read_namespaced_config_map(name, namespace).data or {}
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            raw = self.core.read_namespaced_secret(name, namespace).data or {}
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return {key: base64.b64decode(value).decode("utf-8", "replace") for key, value in raw.items()}

    def container_env(self, pod: Any, container: Any) -> list[dict[str, str]]:
        namespace = pod.metadata.namespace
        resolved: dict[str, str] = {"HOSTNAME": pod.metadata.name}
        for source in container.env_from or []:
            prefix = source.prefix or ""
            if source.config_map_ref:
                values = self.config_map(namespace, source.config_map_ref.name)
            elif source.secret_ref:
                values = self.secret(namespace, source.secret_ref.name)
            else:
                continue
            for key, value in (values or {}).items():
                resolved[prefix + key] = value
        for variable in container.env or []:
            own = self._env_value(pod, variable, resolved)
            if own is not None:
                resolved[variable.name] = own
        return [{"name": name, "value": value} for name, value in resolved.items()]

    def _env_value(self, pod: Any, variable: Any, defined: dict[str, str]) -> str | None:
        if variable.value_from is None:
            # $(VAR) refers to a variable defined earlier; $$ escapes, unknown references stay as written.
            text = variable.value or ""
            return VARIABLE_REFERENCE.sub(lambda match: defined.get(match.group(1), match.group(0)), text)
        source = variable.value_from
        namespace = pod.metadata.namespace
        if source.config_map_key_ref:
            values = self.config_map(namespace, source.config_map_key_ref.name) or {}
            return values.get(source.config_map_key_ref.key)
        if source.secret_key_ref:
            values = self.secret(namespace, source.secret_key_ref.name) or {}
            return values.get(source.secret_key_ref.key)
        if source.field_ref:
            return _field(pod, source.field_ref.field_path)
        return None


def _field(pod: Any, path: str) -> str | None:
    fields = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": pod.status.pod_ip if pod.status else None,
        "status.hostIP": pod.status.host_ip if pod.status else None,
    }
    return fields.get(path)


class StandIn:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.resolver = Resolver(self.core)
        self.materialized: dict[str, str] = {}  # pod uid -> namespace/name
        self.real_nodes: dict[str, bool] = {}  # node name -> run by a real kubelet

    def is_real_node(self, name: str) -> bool:
        """A node keeps its labels for its life: look each name up once (a node not found is not real)."""
        if name not in self.real_nodes:
            try:
                labels = self.core.read_node(name).metadata.labels or {}
            except ApiException as error:
                if error.status != 404:
                    raise
                return False
            self.real_nodes[name] = labels.get(REAL_NODE_LABEL) == REAL_NODE_VALUE
        return self.real_nodes[name]

    def handle(self, event_type: str, pod: Any) -> None:
        uid = pod.metadata.uid
        if event_type == "DELETED":
            self.materialized.pop(uid, None)
            return
        if uid in self.materialized or not pod.spec.node_name or pod.metadata.deletion_timestamp:
            return
        if self.is_real_node(pod.spec.node_name):
            return
        self.materialize(pod)

    def materialize(self, pod: Any) -> None:
        containers = list(pod.spec.init_containers or []) + list(pod.spec.containers or [])
        execs = [
            {"containers": [container.name], "local": {"envs": self.resolver.container_env(pod, container)}}
            for container in containers
        ]
        body = {
            "apiVersion": f"{EXEC_GROUP}/{EXEC_VERSION}",
            "kind": "Exec",
            "metadata": {
                "name": pod.metadata.name,
                "namespace": pod.metadata.namespace,
                "labels": {POD_UID_LABEL: pod.metadata.uid},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid}
                ],
            },
            "spec": {"execs": execs},
        }
        namespace, name = pod.metadata.namespace, pod.metadata.name
        try:
            existing = self.custom.get_namespaced_custom_object(EXEC_GROUP, EXEC_VERSION, namespace, EXEC_PLURAL, name)
            if existing["metadata"].get("labels", {}).get(POD_UID_LABEL) == pod.metadata.uid:
                self.materialized[pod.metadata.uid] = f"{namespace}/{name}"
                return
            # A pod of the same name from before (StatefulSet): its environment is not ours.
            self.custom.delete_namespaced_custom_object(EXEC_GROUP, EXEC_VERSION, namespace, EXEC_PLURAL, name)
        except ApiException as error:
            if error.status != 404:
                raise
        try:
            self.custom.create_namespaced_custom_object(EXEC_GROUP, EXEC_VERSION, namespace, EXEC_PLURAL, body)
        except ApiException as error:
            if error.status == 409:
                return  # raced with ourselves after a relist; the next event settles it
            if error.status == 404:
                return  # the namespace is being deleted
            raise
        self.materialized[pod.metadata.uid] = f"{namespace}/{name}"
        log.info("materialized env of %s/%s (%d containers)", namespace, name, len(execs))

    def run(self) -> None:
        announced = False
        while True:
            try:
                pods = self.core.list_pod_for_all_namespaces()
                for pod in pods.items:
                    self.handle("ADDED", pod)
                if not announced:
                    log.info("stand-in ready")
                    announced = True
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=pods.metadata.resource_version,
                    timeout_seconds=300,
                )
                for event in stream:
                    try:
                        self.handle(event["type"], event["object"])
                    except ApiException as error:
                        log.warning("could not materialize a pod: %s %s", error.status, error.reason)
            except ApiException as error:
                log.warning("watch failed (%s), listing again", error.status)
                time.sleep(1)
            except Exception as error:  # the API server restarting, a dropped connection
                log.warning("watch interrupted (%s), listing again", error)
                time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    api = config.new_client_from_config(config_file=args.kubeconfig)
    StandIn(api).run()


if __name__ == "__main__":
    main()
