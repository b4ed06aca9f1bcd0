"""The seed's experiment, end to end on the local cluster, through `manage.py snapshot` and `driftreport`:
env from a ConfigMap stays old in a running container (observed through exec), a mounted volume is
propagating then fresh, a subPath mount stays stale, and an annotation-patch rollout cures them all.

The propagation window outlasts any snapshot (twice the snapshot task's hard time limit), so the volume is
propagating right after the change however loaded the machine; that it is fresh once the window has passed is
read at an explicit moment beyond it, not after a sleep."""

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone

from drift import verdicts
from drift.clusters import register_cluster
from drift.models import Cluster, SnapshotRun
from drift.tasks import SNAPSHOT_TIME_LIMIT
from drift.verdicts import drift_rows
from tests.kube_helpers import wait_other_test_namespaces_gone, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]

DEMO = Path(__file__).resolve().parent.parent / "deploy" / "demo"
WINDOW_SECONDS = 2 * SNAPSHOT_TIME_LIMIT


def seed_manifests(*files):
    """The demo's manifests, moved from the real node to the simulated ones: this test checks the
    verdicts Driftwatch infers there (tests/test_real_node.py runs the seed on the real node)."""
    for file in files:
        for document in yaml.safe_load_all((DEMO / file).read_text()):
            document["metadata"].pop("namespace", None)
            if document["kind"] == "Deployment":
                pod_spec = document["spec"]["template"]["spec"]
                pod_spec.pop("nodeSelector")
                pod_spec.pop("tolerations")
            yield document


@pytest.fixture
def cluster(kubeconfig):
    registered, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    Cluster.objects.filter(pk=registered.pk).update(propagation_window_seconds=WINDOW_SECONDS)
    registered.refresh_from_db()
    return registered


@pytest.fixture
def seed(kube):
    for manifest in seed_manifests("10-env-demo.yaml", "20-volume-demo.yaml"):
        if manifest["kind"] == "ConfigMap":
            kube.config_map(manifest["metadata"]["name"], manifest["data"])
        else:
            kube.create_deployment(manifest)
    for name in ("env-demo", "volume-demo", "subpath-demo"):
        kube.wait_deployment_ready(name)
    for pod in kube.ready_pods("env-demo"):
        kube.wait_exec_ready(pod.metadata.name)
    return kube


def snapshot():
    out = io.StringIO()
    call_command("snapshot", "--cluster", "local", stdout=out)
    assert_stored_equal_fresh()
    return out.getvalue()


def assert_stored_equal_fresh(now=None):
    """driftreport reads the stored verdicts: after every cycle they are what the rules say from the facts."""
    cluster = Cluster.objects.get(name="local")
    now = now or timezone.now()

    def comparable(rows):
        return sorted((r.consumption_id, r.verdict, r.evidence, r.running_version, r.current_version, r.stale_since,
                       r.split) for r in rows)  # fmt: skip

    assert comparable(verdicts.rows(cluster, now=now)) == comparable(drift_rows(cluster, now=now))


def report(namespace, now=None):
    """What driftreport prints now; at another moment, what its reader (the stored verdicts) gives then."""
    if now is None:
        out = io.StringIO()
        call_command("driftreport", "--json", "--cluster", "local", "--namespace", namespace, stdout=out)
        rows = json.loads(out.getvalue())
    else:
        rows = [row.as_json() for row in verdicts.rows(Cluster.objects.get(name="local"), namespace, now=now)]
    return [row for row in rows if row["source"]["name"] != "kube-root-ca.crt"]


def reasons(rows, workload):
    """Each pod's reason, for a failure's message."""
    return [(row["pod"], row["reason"]) for row in rows if row["workload"]["name"] == workload]


def verdicts_of(rows, workload):
    return {(row["mode"], row["verdict"], row["evidence"]) for row in rows if row["workload"]["name"] == workload}


def test_the_seed_experiment_end_to_end(cluster, seed):
    namespace = seed.namespace
    summary = snapshot()
    assert summary.startswith("local: succeeded")

    rows = report(namespace)
    assert {row["verdict"] for row in rows} == {"fresh"}
    assert verdicts_of(rows, "env-demo") == {("envFrom", "fresh", "observed")}
    assert len([row for row in rows if row["workload"]["name"] == "env-demo"]) == 2
    required = {"cluster", "namespace", "pod", "container", "workload", "source", "mode", "verdict", "evidence",
                "running_version", "current_version", "stale_since"}  # fmt: skip
    assert required <= set(rows[0])
    assert rows[0]["workload"]["kind"] == "Deployment"

    seed.edit_config_map("env-config", {"log_level": "DEBUG"})
    seed.edit_config_map("special-config", {"log_level": "DEBUG"})
    snapshot()
    rows = report(namespace)
    assert verdicts_of(rows, "env-demo") == {("envFrom", "stale", "observed")}
    assert verdicts_of(rows, "volume-demo") == {("volume", "propagating", "inferred")}
    assert verdicts_of(rows, "subpath-demo") == {("subPath", "stale", "inferred")}
    stale = [row for row in rows if row["verdict"] == "stale"]
    assert all(row["stale_since"] and row["running_version"] != row["current_version"] for row in stale)
    env_row = next(row for row in rows if row["workload"]["name"] == "env-demo")
    assert env_row["source"] == {"kind": "ConfigMap", "name": "env-config"}

    snapshot()
    beyond_the_window = timezone.now() + timedelta(seconds=WINDOW_SECONDS + 1)
    assert_stored_equal_fresh(now=beyond_the_window)
    rows = report(namespace, now=beyond_the_window)
    assert verdicts_of(rows, "volume-demo") == {("volume", "fresh", "inferred")}
    assert verdicts_of(rows, "env-demo") == {("envFrom", "stale", "observed")}, "env never catches up by itself"
    assert verdicts_of(rows, "subpath-demo") == {("subPath", "stale", "inferred")}, "subPath never catches up"

    old_pods = {row["pod"] for row in rows}
    # A container's start comes in whole seconds: one started within the second the change was recorded in may
    # hold either content. The new pods start in a later second (on an idle machine they came within the same).
    later_second = timezone.now().replace(microsecond=0) + timedelta(seconds=1)
    wait_until(lambda: timezone.now() >= later_second, interval=0.05, what="the next second")
    for name in ("env-demo", "subpath-demo"):
        seed.patch_template_annotation(name, "driftwatch.io/config-hash", "after-edit")
    for name in ("env-demo", "subpath-demo"):
        wait_until(lambda name=name: len(seed.replica_sets(name)) == 2, what=f"{name} rolled")
        seed.wait_deployment_ready(name)
        wait_until(lambda name=name: len(seed.pods(name)) == len(seed.ready_pods(name)), what=f"{name} settled")
    for pod in seed.ready_pods("env-demo"):
        seed.wait_exec_ready(pod.metadata.name)

    snapshot()
    rows = report(namespace)
    assert verdicts_of(rows, "env-demo") == {("envFrom", "fresh", "observed")}
    assert verdicts_of(rows, "subpath-demo") == {("subPath", "fresh", "inferred")}, reasons(rows, "subpath-demo")
    assert {row["pod"] for row in rows if row["workload"]["name"] == "env-demo"}.isdisjoint(old_pods)


def test_an_idle_cycle_writes_only_its_run_record(cluster, seed, kube_api):
    wait_other_test_namespaces_gone(kube_api, keep=seed.namespace)
    snapshot()
    from django.apps import apps

    counts = {model.__name__: model.objects.count() for model in apps.get_app_config("drift").get_models()}
    snapshot()
    after = {model.__name__: model.objects.count() for model in apps.get_app_config("drift").get_models()}
    assert after.pop("SnapshotRun") == counts.pop("SnapshotRun") + 1
    assert after == counts
    idle = SnapshotRun.objects.filter(cluster=cluster).first()
    assert idle.rows_written == 0
    assert idle.exec_probes == 0


def test_api_calls_do_not_grow_with_pods(cluster, seed):
    snapshot()
    small = SnapshotRun.objects.filter(cluster=cluster).first()
    seed.apps.patch_namespaced_deployment_scale("volume-demo", seed.namespace, {"spec": {"replicas": 12}})
    seed.wait_deployment_ready("volume-demo")
    snapshot()
    snapshot()
    large = SnapshotRun.objects.filter(cluster=cluster).first()
    assert large.exec_probes == 0
    assert large.api_calls == small.api_calls - small.exec_probes
