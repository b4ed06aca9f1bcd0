"""The seed's experiment on the real node, through `manage.py snapshot` and `driftreport`: every verdict
observed by exec into real containers, none inferred. Env stale, volume propagating then fresh (when
the kubelet rewrites it, within its sync period), subPath stale, and an annotation rollout cures them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from drift.clusters import register_cluster
from drift.verdicts import measured
from tests.kube_helpers import wait_until
from tests.test_real_node import VOLUME_REFRESH_LIMIT, find_real_node

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

DEMO = Path(__file__).resolve().parent.parent / "deploy" / "demo"


@pytest.fixture
def cluster(kubeconfig, kube_api):
    find_real_node(kube_api)
    registered, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    return registered


@pytest.fixture
def seed(kube):
    """The demo's env-demo, volume-demo, subpath-demo and nginx as shipped: on the real node."""
    for file in ("10-env-demo.yaml", "20-volume-demo.yaml", "30-nginx-config.yaml"):
        for manifest in yaml.safe_load_all((DEMO / file).read_text()):
            manifest["metadata"].pop("namespace", None)
            if manifest["kind"] == "ConfigMap":
                kube.config_map(manifest["metadata"]["name"], manifest["data"])
            else:
                assert manifest["spec"]["template"]["spec"]["nodeSelector"] == {"driftwatch.io/node": "real"}
                kube.create_deployment(manifest)
    for name in ("env-demo", "volume-demo", "subpath-demo", "nginx"):
        kube.wait_deployment_ready(name)
    return kube


def snapshot() -> str:
    out = io.StringIO()
    call_command("snapshot", "--cluster", "local", stdout=out)
    return out.getvalue()


def report(namespace: str) -> list[dict]:
    out = io.StringIO()
    call_command("driftreport", "--json", "--cluster", "local", "--namespace", namespace, stdout=out)
    return json.loads(out.getvalue())


def verdicts(namespace: str) -> dict[str, set[tuple[str, str, str]]]:
    found: dict[str, set[tuple[str, str, str]]] = {}
    for row in report(namespace):
        if row["source"]["name"] != "kube-root-ca.crt":
            found.setdefault(row["workload"]["name"], set()).add((row["mode"], row["verdict"], row["evidence"]))
    return found


def pods_left(kube, app: str) -> int:
    """Pods of `app` that still exist, terminating ones included (Kube.pods leaves those out)."""
    return len(kube.core.list_namespaced_pod(kube.namespace, label_selector=f"app={app}").items)


def replicas(kube, app: str) -> int:
    return kube.apps.read_namespaced_deployment(app, kube.namespace).spec.replicas


def test_the_seed_experiment_observed_on_the_real_node(cluster, seed):
    namespace = seed.namespace
    assert snapshot().startswith("local: succeeded")
    assert verdicts(namespace) == {
        "env-demo": {("envFrom", "fresh", "observed")},
        "volume-demo": {("volume", "fresh", "observed")},
        "subpath-demo": {("subPath", "fresh", "observed")},
        # Real nginx reading nginx-config as a whole volume at /etc/nginx (tests/test_real_node_process.py edits
        # it: the file turns new while nginx keeps what it read; here it is never edited).
        "nginx": {("volume", "fresh", "observed")},
    }

    seed.edit_config_map("env-config", {"log_level": "DEBUG"})
    seed.edit_config_map("special-config", {"log_level": "DEBUG"})
    snapshot()
    after_edit = verdicts(namespace)
    assert after_edit["env-demo"] == {("envFrom", "stale", "observed")}
    assert after_edit["subpath-demo"] == {("subPath", "stale", "observed")}
    # The kubelet may already have rewritten one pod's volume: each pod is propagating, observed, or fresh. Fresh
    # is inferred: the file is observed new, and that its app takes it rests on the template's declaration
    # (driftwatch.io/reload: hot), since no process of it watches the folder.
    assert after_edit["volume-demo"] <= {("volume", "propagating", "observed"), ("volume", "fresh", "inferred")}

    def volume_fresh() -> bool:
        snapshot()
        return verdicts(namespace)["volume-demo"] == {("volume", "fresh", "inferred")}

    wait_until(volume_fresh, timeout=VOLUME_REFRESH_LIMIT, interval=5, what="volume-demo fresh (declared hot)")
    assert all(
        "declared hot by annotation driftwatch.io/reload" in row["reason"]
        for row in report(namespace)
        if row["workload"]["name"] == "volume-demo" and row["source"]["name"] == "special-config"
    )
    # The refresh the probe saw is measured: from the edit to the kubelet's new ..data folder.
    delays = measured.refresh_delays(cluster, timezone.now())
    assert 1 <= delays.count <= 2 and 0 <= delays.shortest <= delays.longest <= VOLUME_REFRESH_LIMIT, delays
    settled = verdicts(namespace)
    assert settled["env-demo"] == {("envFrom", "stale", "observed")}, "env never catches up by itself"
    assert settled["subpath-demo"] == {("subPath", "stale", "observed")}, "subPath never catches up"
    assert settled["nginx"] == {("volume", "fresh", "observed")}, "nginx-config was not edited"

    for name in ("env-demo", "subpath-demo"):
        seed.patch_template_annotation(name, "driftwatch.io/config-hash", "after-edit")
    for name in ("env-demo", "subpath-demo"):
        wait_until(lambda name=name: len(seed.replica_sets(name)) == 2, what=f"{name} rolled")
        seed.wait_deployment_ready(name)
        # A real kubelet takes a moment to stop the old pods; until then they run, and are reported, stale.
        wait_until(lambda name=name: pods_left(seed, name) == replicas(seed, name), what=f"{name}'s old pods gone")
    snapshot()
    cured = verdicts(namespace)
    assert cured["env-demo"] == {("envFrom", "fresh", "observed")}
    assert cured["subpath-demo"] == {("subPath", "fresh", "observed")}
