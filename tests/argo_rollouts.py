"""The Argo Rollouts controller for the tests of the Rollout kind: built once by scripts/argo-rollouts (cached
outside the repo by version), its CRDs applied to the local cluster, and one controller process per test,
namespaced to the test's namespace and run against the local API server's kubeconfig. Its health and metrics
ports are free ones on this machine; the test talks to its health port on loopback only."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.kube_helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"
# The CRDs a Rollout needs: its own, and the analysis and experiment kinds the controller's informers list.
CRDS = ("rollouts", "analysisruns", "analysistemplates", "clusteranalysistemplates", "experiments")


def built() -> Path:
    """The folder holding rollouts-controller and crds/ (built on first use, a few minutes on 2 cores); skips
    the test with the script's own words when it cannot be built here (no Go, no module proxy)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "argo-rollouts"), "path"], capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        pytest.skip(f"the Argo Rollouts controller cannot be built here: {result.stderr.strip()[-1500:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def apply_crds(folder: Path) -> None:
    """Server-side: the Rollout CRD is too large for the last-applied annotation of a client-side apply."""
    kubectl = [str(ROOT / "scripts" / "cluster"), "kubectl"]
    apply = subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(folder / "crds")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert apply.returncode == 0, apply.stderr
    names = [f"crd/{name}.{GROUP}" for name in CRDS]

    def established() -> bool:
        # Right after the apply a CRD may have no status yet, which `kubectl wait` answers with an error: ask again.
        wait = subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "--timeout=10s", *names],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return wait.returncode == 0

    wait_until(established, timeout=60, interval=1, what="the Argo Rollouts CRDs Established")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def controller(folder: Path, kubeconfig: Path, namespace: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The controller, watching `namespace` only (its leases and notification ConfigMap there too), until the
    block ends. No leader election: each test's controller has its namespace to itself."""
    health, metrics = free_port(), free_port()
    command = [
        str(folder / "rollouts-controller"), "--kubeconfig", str(kubeconfig), "--namespaced", "--namespace", namespace,
        "--leader-elect=false", "--healthzPort", str(health), "--metricsPort", str(metrics), "--loglevel", "info",
        "--rollout-resync", "30",
    ]  # fmt: skip
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "POD_NAMESPACE": namespace}
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(health):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Argo Rollouts controller did not start:\n{log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.3)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def rollout_manifest(
    name: str,
    template: dict[str, Any] | None,
    replicas: int = 1,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Rollout of `replicas` pods, canary with two short steps (they run only when its template changes)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Rollout",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            **({"template": template} if template is not None else {}),
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}},
            **spec,
        },
    }


class Rollouts:
    """The Rollouts of one test's namespace, through the API server's custom objects API."""

    def __init__(self, api: k8s.ApiClient, namespace: str, log: Path) -> None:
        self.custom = k8s.CustomObjectsApi(api)
        self.namespace = namespace
        self.log = log  # what the controller printed

    def said(self, words: str) -> bool:
        return words in self.log.read_text(errors="replace")

    def create(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, manifest)

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        return found

    def wait_healthy(self, name: str, timeout: float = 180) -> dict[str, Any]:
        """Healthy as its controller judges it, for its current generation, every pod available and, after a
        restart, status.restartedAt caught up with spec.restartAt."""

        def healthy() -> dict[str, Any] | None:
            rollout = self.get(name)
            spec, status = rollout["spec"], rollout.get("status") or {}
            done = (
                status.get("phase") == "Healthy"
                and status.get("observedGeneration") == str(rollout["metadata"]["generation"])
                and status.get("availableReplicas", 0) == spec.get("replicas", 1)
                and status.get("updatedReplicas", 0) == spec.get("replicas", 1)
                and spec.get("restartAt") == status.get("restartedAt")
            )
            return rollout if done else None

        result: dict[str, Any] = wait_until(healthy, timeout=timeout, interval=1, what=f"Rollout {name} Healthy")
        return result
