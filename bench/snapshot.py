"""Benchmark (not a test): how much a snapshot cycle costs over the raw LISTs it cannot avoid.

On the local cluster it creates N simulated pods (default 2,000 in 200 Deployments consuming 300
ConfigMaps), lets a first cycle record them and probe their environments, then times, several times
each and interleaved: the raw paginated LIST of the same objects (JSON decoded, nothing else), and an
idle snapshot cycle. It prints both, their ratio, and the rows an idle cycle inserted.

Run with `make bench-snapshot`, or: DRIFTWATCH_NODES=25 scripts/cluster up && .venv/bin/python bench/snapshot.py
(kwok nodes hold 110 pods each, so 2,000 pods need about 20 nodes). It uses its own database,
driftwatch_bench, and deletes its namespaces at the end unless --keep is given."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://driftwatch:driftwatch@127.0.0.1:5432/driftwatch_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
# A benchmark on loopback needs a key of its own (Driftwatch refuses the published development key).
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

NAMESPACE_PREFIX = "bench-"


def scenario_parser(description: str, repeat: int) -> argparse.ArgumentParser:
    """The scenario's options, shared by the benchmarks that build on it (bench/metrics.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--config-maps", type=int, default=300)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--keep", action="store_true", help="keep the workloads for another run")
    return parser


def main() -> None:
    parser = scenario_parser(__doc__.splitlines()[0], repeat=5)
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file (for bench/table.py)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows as it happens, even into a file

    ensure_database()
    import django

    django.setup()
    from kubernetes import config as k8s_config

    from drift.models import Cluster

    kubeconfig = ROOT / ".cluster" / "kubeconfig"
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    pods_wanted = args.deployments * args.replicas
    started = time.monotonic()
    create_workloads(api, args)
    wait_for_pods(api, pods_wanted)
    print(f"workloads ready: {pods_wanted} pods in {args.deployments} Deployments, {args.config_maps} ConfigMaps, "
          f"{args.namespaces} namespaces ({time.monotonic() - started:.0f}s)")  # fmt: skip

    Cluster.objects.filter(name="bench").delete()
    # No request cap here: the benchmark compares work, not the politeness towards the API server.
    # A 30 s propagation window (instead of 120 s) shortens the wait for the steady state.
    cluster = Cluster.objects.create(
        name="bench", kubeconfig_path=str(kubeconfig), api_requests_per_second=0, propagation_window_seconds=30
    )
    try:
        results = measure(cluster, kubeconfig, args.repeat)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"pods": pods_wanted, **results}))
    finally:
        if not args.keep:
            delete_workloads(api, args)


def ensure_database() -> None:
    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    exists = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-h", "127.0.0.1", "-U", "postgres", "-qtAc",
         f"SELECT 1 FROM pg_database WHERE datname='{name}'"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    if exists != "1":
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
             f"CREATE DATABASE {name} OWNER driftwatch"],
            check=True,
        )  # fmt: skip
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def create_workloads(api, args) -> None:
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    namespaces = [f"{NAMESPACE_PREFIX}{index}" for index in range(args.namespaces)]
    for namespace in namespaces:
        try:
            core.create_namespace({"metadata": {"name": namespace}})
        except ApiException as error:
            if error.status != 409:
                raise
    per_namespace = max(1, args.config_maps // args.namespaces)
    for index in range(args.config_maps):
        namespace = namespaces[index % args.namespaces]
        body = {"metadata": {"name": f"config-{index // args.namespaces}"},
                "data": {"log_level": "INFO", "app.properties": f"instance={index}\n" + "x=1\n" * 20}}  # fmt: skip
        try:
            core.create_namespaced_config_map(namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
    for index in range(args.deployments):
        namespace = namespaces[index % args.namespaces]
        # Each Deployment reads two ConfigMaps of its namespace: one as env, one as a volume.
        first = f"config-{(index // args.namespaces) % per_namespace}"
        second = f"config-{(index // args.namespaces + 1) % per_namespace}"
        container = {
            "name": "app",
            "image": "nginx:1.27",
            "envFrom": [{"configMapRef": {"name": first}}],
            "volumeMounts": [{"name": "config", "mountPath": "/etc/config"}],
        }
        manifest = {
            "metadata": {"name": f"app-{index}"},
            "spec": {
                "replicas": args.replicas,
                "selector": {"matchLabels": {"app": f"app-{index}"}},
                "template": {
                    "metadata": {"labels": {"app": f"app-{index}"}},
                    "spec": {"containers": [container], "volumes": [{"name": "config", "configMap": {"name": second}}]},
                },
            },
        }
        try:
            apps.create_namespaced_deployment(namespace, manifest)
        except ApiException as error:
            if error.status != 409:
                raise


def wait_for_pods(api, wanted: int, timeout: float = 900) -> None:
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = [
            pod
            for pod in core.list_pod_for_all_namespaces(label_selector="app").items
            if pod.metadata.namespace.startswith(NAMESPACE_PREFIX)
            and pod.status.phase == "Running"
            and not pod.metadata.deletion_timestamp
        ]
        if len(pods) >= wanted:
            return
        time.sleep(3)
    raise SystemExit(f"only {len(pods)} of {wanted} pods became Running: are there enough nodes? "
                     "(DRIFTWATCH_NODES=25 scripts/cluster up)")  # fmt: skip


def raw_list_seconds(kubeconfig: Path) -> float:
    """The same paginated LISTs a snapshot makes, decoded from JSON, and nothing else; with Python's cyclic
    collector paused, as a cycle runs (drift.collector), so that both sides pay the same for decoding."""
    from drift import kube
    from drift.collector import collector_paused
    from drift.snapshot.listing import LISTED_RESOURCES

    with kube.KubeClient(kube.ClusterCredentials(str(kubeconfig))) as client, collector_paused():
        started = time.perf_counter()
        for resource, path in [*LISTED_RESOURCES.items(), ("nodes", "/api/v1/nodes")]:
            for _ in client.list_paginated(path, what=f"list {resource}"):
                pass
        return time.perf_counter() - started


def table_rows() -> int:
    from django.apps import apps

    return sum(model._default_manager.count() for model in apps.get_app_config("drift").get_models())


def measure(cluster, kubeconfig: Path, repeat: int) -> dict:
    from drift.models import Pod, SourceVersion
    from drift.snapshot import snapshot
    from drift.snapshot.probing import RECENT_CHANGE_MARGIN

    started = time.perf_counter()
    first = snapshot(cluster)
    first_seconds = time.perf_counter() - started
    print(f"first cycle: {time.perf_counter() - started:.1f}s, {first.rows_written} rows, "
          f"{first.exec_probes} exec probes, {first.api_calls} API calls, status {first.status}")  # fmt: skip
    snapshot(cluster)  # settles anything that changed while the first cycle ran
    print(f"pods recorded: {Pod.objects.filter(cluster=cluster, deleted_at=None).count()}")

    # Right after sources appear or change, volume consumers stay candidates for a re-probe during the
    # propagation window plus a margin; after that an idle cycle has nothing left to plan.
    after_changes = report_cycles("idle, sources just recorded", cluster, kubeconfig, repeat)
    newest = SourceVersion.objects.filter(source__cluster=cluster).latest("first_seen").first_seen
    from datetime import timedelta

    from django.utils import timezone

    quiet_at = newest + timedelta(seconds=cluster.propagation_window_seconds) + RECENT_CHANGE_MARGIN
    wait = (quiet_at - timezone.now()).total_seconds() + 1
    if wait > 0:
        print(f"waiting {wait:.0f}s for the propagation window and margin to pass")
        time.sleep(wait)
    steady = report_cycles("idle, steady state", cluster, kubeconfig, repeat)
    return {"first_cycle_s": first_seconds, "exec_probes": first.exec_probes, "after_changes": after_changes,
            "steady": steady}  # fmt: skip


def report_cycles(label: str, cluster, kubeconfig: Path, repeat: int) -> dict:
    from drift.snapshot import snapshot

    lists, cycles, inserted = [], [], []
    for _ in range(repeat):
        lists.append(raw_list_seconds(kubeconfig))
        before = table_rows()
        started = time.perf_counter()
        run = snapshot(cluster)
        cycles.append(time.perf_counter() - started)
        inserted.append(table_rows() - before - 1)  # minus the run record itself
        assert run.exec_probes == 0, "an idle cycle must not exec"
    ratio = statistics.median(cycles) / statistics.median(lists)
    print(f"[{label}] {repeat} cycles")
    print(f"  raw LIST   median {statistics.median(lists):.3f}s  min {min(lists):.3f}s  max {max(lists):.3f}s")
    print(f"  snapshot   median {statistics.median(cycles):.3f}s  min {min(cycles):.3f}s  max {max(cycles):.3f}s")
    print(f"  ratio      {ratio:.2f} (median snapshot / median raw LIST; goal <= 1.2 steady, <= 1.3 right after)")
    print(f"  rows inserted besides the run record: {inserted} (target: all 0)")
    # Each cycle over the raw LIST taken just before it: the spread of the ratio within this run.
    ratios = [cycle / listed for cycle, listed in zip(cycles, lists, strict=True)]
    return {"ratio": ratio, "ratio_min": min(ratios), "ratio_max": max(ratios), "inserted": inserted,
            "list_median_s": statistics.median(lists), "cycle_median_s": statistics.median(cycles)}  # fmt: skip


def delete_workloads(api, args) -> None:
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api)
    for index in range(args.namespaces):
        core.delete_namespace(f"{NAMESPACE_PREFIX}{index}", propagation_policy="Background")


if __name__ == "__main__":
    main()
