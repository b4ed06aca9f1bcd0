"""Benchmark (not a test): what watching pods costs and how fast it is, at one cluster of 5,000 pods.

It reuses the pods of bench/snapshot.py (`make bench` runs it first with --keep; alone, this creates the same
500 Deployments x 10 replicas unless they exist), registers a cluster, starts every watch of it in this process
(drift.snapshot.watch.cluster_watches, as `manage.py watch` does) and measures:

1. API requests and bytes read per idle minute by the watcher, against one raw paginated LIST of the same
   objects (pods, ReplicaSets, Jobs, ConfigMaps, Secrets, nodes), both counted by Driftwatch's own client
   (drift.kube.Traffic: every request, every byte of every response and watch stream). The reconcile's LIST
   every reconcile interval is added per minute. Goal: <= 0.2 x one raw LIST a minute.
2. A pod started (a new Deployment) or replaced (its pod deleted) -> its row and stored verdict, its env
   probe included. Goal: <= 5 s median.
3. A ConfigMap edit -> every affected stored verdict updated, for a source with 500 consumers (100 pods of
   5 containers each, in a namespace of their own). Goal: <= 5 s.

The cluster is registered read-only while the watcher first records the 5,000 pods (the first pass would
otherwise exec into every one of them: measured by bench/snapshot.py, not here), then may exec, so that the
pods of (2) are probed as a new pod is. Run: .venv/bin/python bench/podwatch.py [--out FILE]; `--idle-only` measures
(1) alone, `--pods N` on fewer pods (a cluster without 50 simulated nodes; the watcher's own requests do not grow
with the pods, a raw LIST's do), `--idle-seconds S` over a longer window (a watch lasts 5-10 minutes, so one minute
often sees none reopen), `--keep` leaves the workloads, `--namespaced` registers the cluster in namespaced mode for
the benchmark's namespaces only (`--namespaces 1`: the same three watches as cluster-wide), so that other work on
a shared cluster does not count as the watcher's."""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from snapshot import (
    NAMESPACE_PREFIX,
    ROOT,
    create_workloads,
    delete_workloads,
    ensure_database,
    scenario_parser,
    wait_for_pods,
)

NAMESPACE = "bench-podwatch"
IDLE_SECONDS = 60


def main() -> None:
    parser = scenario_parser(__doc__.splitlines()[0], repeat=5)
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--consumers", type=int, default=500, help="consumers of the source edited in (3)")
    parser.add_argument("--pods", type=int, default=5000, help="pods, in Deployments of 10 (default %(default)s)")
    parser.add_argument("--idle-only", action="store_true", help="measure the idle minute (1) only")
    parser.add_argument("--idle-seconds", type=int, default=IDLE_SECONDS, help="length of one idle window")
    parser.add_argument("--namespaced", action="store_true", help="watch the benchmark's namespaces only")
    args = parser.parse_args()
    args.replicas = 10
    args.deployments = args.config_maps = max(1, args.pods // args.replicas)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    ensure_database()
    import django

    django.setup()
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    from drift.models import Cluster

    kubeconfig = ROOT / ".cluster" / "kubeconfig"
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    create_workloads(api, args)
    wait_for_pods(api, args.deployments * args.replicas)
    core = k8s.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except k8s.ApiException as error:
        if error.status != 409:
            raise
    Cluster.objects.filter(name="bench-podwatch").delete()
    namespaces = []
    if args.namespaced:
        namespaces = [f"{NAMESPACE_PREFIX}{index}" for index in range(args.namespaces)]
        namespaces += [] if args.idle_only else [NAMESPACE]
    cluster = Cluster.objects.create(
        name="bench-podwatch", kubeconfig_path=str(kubeconfig), api_requests_per_second=1000, read_only=True,
        file_probes=Cluster.FileProbes.NEVER, exec_concurrency=8, namespaces=namespaces,
    )  # fmt: skip
    stop = threading.Event()
    try:
        watches = start_watching(cluster, stop)
        results = {"pods": args.pods, "idle": idle_minute(cluster, kubeconfig, watches, args.repeat, args.idle_seconds)}
        if not args.idle_only:
            results["pod"] = pod_started_or_replaced(cluster, api, args.repeat)
            results["config_map"] = config_map_edit(cluster, api, args.consumers, max(2, args.repeat // 2))
        results["watch_counts"] = {name: watch.counts for name, watch in watches.items()}
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results))
    finally:
        stop.set()
        core.delete_namespace(NAMESPACE, propagation_policy="Background")
        Cluster.objects.filter(pk=cluster.pk).delete()
        if not args.keep:
            delete_workloads(api, args)


def start_watching(cluster, stop: threading.Event) -> dict:
    from drift.models import Cluster
    from drift.snapshot.watch import ResourceWatch, cluster_watches

    started = time.monotonic()
    watches = cluster_watches(cluster.pk, stop)
    for watch in watches.values():
        threading.Thread(target=watch.run, daemon=True).start()
    api_watches = [watch for watch in watches.values() if isinstance(watch, ResourceWatch)]
    while not all(watch.counts.get("watches") for watch in api_watches):
        time.sleep(0.5)
    settle(watches["probes"])
    print(f"watching: every watch open, {len(api_watches)} watches, first LISTs recorded "
          f"({time.monotonic() - started:.0f}s)")  # fmt: skip
    Cluster.objects.filter(pk=cluster.pk).update(read_only=False)  # from now on, new containers are probed
    return watches


def settle(planner, quiet: float = 3.0) -> None:
    """Wait until the probe planner made no pass for `quiet` seconds."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < quiet:
        passes = planner.counts.get("passes", 0)
        if passes != last:
            last, since = passes, time.monotonic()
        time.sleep(0.5)


def raw_list(kubeconfig: Path, namespaces: list[str]) -> tuple[int, int]:
    """Requests and bytes of one paginated LIST of every kind a snapshot reads (of these namespaces only, when
    given, as a snapshot in namespaced mode reads)."""
    from drift import kube
    from drift.snapshot.listing import LISTED_RESOURCES

    paths = list(LISTED_RESOURCES.items())
    if namespaces:
        paths = [(resource, path.replace("/v1/", f"/v1/namespaces/{namespace}/", 1))
                 for namespace in namespaces for resource, path in paths]  # fmt: skip
    traffic = kube.Traffic()
    with kube.KubeClient(kube.ClusterCredentials(str(kubeconfig)), traffic=traffic) as client:
        for resource, path in [*paths, ("nodes", "/api/v1/nodes")]:
            for _ in client.list_paginated(path, what=f"list {resource}"):
                pass
    return traffic.requests, traffic.bytes_read


def table_rows() -> dict[str, int]:
    from django.apps import apps

    return {model._meta.db_table: model._default_manager.count() for model in apps.get_app_config("drift").get_models()}


def watches_opened(watches: dict) -> int:
    return sum(watch.counts.get("watches", 0) for watch in watches.values())


def idle_minute(cluster, kubeconfig: Path, watches: dict, repeat: int, seconds: int = IDLE_SECONDS) -> dict:
    from drift.clusters import cluster_traffic

    traffic = cluster_traffic(cluster)
    list_requests, list_bytes = raw_list(kubeconfig, cluster.namespaces)
    reconcile_per_minute = 60 / cluster.reconcile_interval_seconds
    per_minute = 60 / seconds
    runs = []
    for _ in range(max(1, repeat // 2)):
        rows_before, requests, bytes_read = table_rows(), traffic.requests, traffic.bytes_read
        opened = watches_opened(watches)
        time.sleep(seconds)
        rows_after = table_rows()
        inserted = {t: rows_after[t] - rows_before[t] for t in rows_before if rows_after[t] != rows_before[t]}
        runs.append((traffic.requests - requests, traffic.bytes_read - bytes_read, inserted, os.getloadavg()[0],
                     watches_opened(watches) - opened))  # fmt: skip
    # Per minute, each with the reconcile's share of a LIST added: what the cluster pays for being watched.
    byte_ratios = [(b * per_minute + reconcile_per_minute * list_bytes) / list_bytes for _, b, *_ in runs]
    request_ratios = [(r * per_minute + reconcile_per_minute * list_requests) / list_requests for r, *_ in runs]
    print(f"[idle minute] one raw LIST: {list_requests} requests, {list_bytes / 1e6:.2f} MB")
    for requests, bytes_read, inserted, load, opened in runs:
        print(f"  watcher: {requests} requests ({opened} watches opened), {bytes_read / 1e3:.1f} kB in {seconds}s "
              f"(load average {load:.2f}); rows changed: {inserted}")  # fmt: skip
    print(f"  + a reconcile LIST every {cluster.reconcile_interval_seconds}s = {reconcile_per_minute:.2f} LIST/min")
    print(f"  requests per idle minute / one raw LIST's: {min(request_ratios):.3f}-{max(request_ratios):.3f} "
          f"(goal <= 0.2)")  # fmt: skip
    print(f"  bytes per idle minute / one raw LIST's: {min(byte_ratios):.3f}-{max(byte_ratios):.3f} (goal <= 0.2)")
    return {"list_requests": list_requests, "list_bytes": list_bytes, "seconds": seconds, "runs": runs,
            "ratio_min": min(byte_ratios), "ratio_max": max(byte_ratios),
            "request_ratio_min": min(request_ratios), "request_ratio_max": max(request_ratios)}  # fmt: skip


def deployment(name: str, config_map: str, replicas: int = 1, containers: int = 1) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": f"app-{index}",
                            "image": "nginx:1.27",
                            "envFrom": [{"configMapRef": {"name": config_map}}],
                        }
                        for index in range(containers)
                    ]
                },
            },
        },
    }


def wait_for(condition, timeout: float = 120, interval: float = 0.05) -> float:
    """Seconds until `condition()` holds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout}s")


def judged_and_probed(uid: str) -> bool:
    from drift.models import Observation, StoredVerdict

    return (
        StoredVerdict.objects.filter(pod__uid=uid).exists()
        and Observation.objects.filter(consumption__container__pod__uid=uid).exists()
    )


def pod_started_or_replaced(cluster, api, repeat: int) -> dict:
    from kubernetes import client as k8s

    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "started"}, "data": {"level": "INFO"}})
    started_s, replaced_s = [], []
    for index in range(repeat):
        name = f"started-{index}"
        apps.create_namespaced_deployment(NAMESPACE, deployment(name, "started"))
        created = time.monotonic()
        pods = wait_pod(core, name, exclude=set())
        wait_for(lambda uid=pods[0]: judged_and_probed(uid))
        started_s.append(time.monotonic() - created)  # from the create call: scheduling and start included
        core.delete_namespaced_pod(
            core.list_namespaced_pod(NAMESPACE, label_selector=f"app={name}").items[0].metadata.name, NAMESPACE
        )
        deleted = time.monotonic()
        replacement = wait_pod(core, name, exclude=set(pods))
        wait_for(lambda uid=replacement[0]: judged_and_probed(uid))
        replaced_s.append(time.monotonic() - deleted)
    for label, values in (("started", started_s), ("replaced", replaced_s)):
        print(f"[pod {label} -> row, probe and verdict] median {statistics.median(values):.2f}s  "
              f"min {min(values):.2f}s  max {max(values):.2f}s  (goal <= 5 s median)")  # fmt: skip
    return {"started": started_s, "replaced": replaced_s}


def wait_pod(core, app: str, exclude: set[str], timeout: float = 120) -> list[str]:
    """The uids of the app's pods not in `exclude`, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = core.list_namespaced_pod(NAMESPACE, label_selector=f"app={app}").items
        found = [pod.metadata.uid for pod in items if pod.metadata.uid not in exclude]
        if found:
            return found
        time.sleep(0.05)
    raise SystemExit(f"no pod of {app} in {timeout}s")


def config_map_edit(cluster, api, consumers: int, repeat: int) -> dict:
    from django.utils import timezone
    from kubernetes import client as k8s

    from drift.models import Cluster, StoredVerdict

    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    per_pod = 5
    # 500 env reads would only measure kwok's exec on this host: these verdicts are inferred (read-only).
    Cluster.objects.filter(pk=cluster.pk).update(read_only=True)
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "shared"}, "data": {"level": "0"}})
    apps.create_namespaced_deployment(NAMESPACE, deployment("shared", "shared", consumers // per_pod, per_pod))

    def consumer_verdicts():
        return StoredVerdict.objects.filter(
            cluster=cluster, consumption__source_name="shared", pod__namespace=NAMESPACE, pod__deleted_at=None
        )

    wait_for(lambda: consumer_verdicts().count() >= consumers, timeout=600, interval=1)
    settle_seconds = 5
    time.sleep(settle_seconds)
    seconds = []
    for index in range(repeat):
        after = timezone.now()
        core.patch_namespaced_config_map("shared", NAMESPACE, {"data": {"level": str(index + 1)}})
        edited = time.monotonic()
        wait_for(lambda after=after: consumer_verdicts().filter(judged_at__gte=after).count() >= consumers, timeout=120)
        seconds.append(time.monotonic() - edited)
        time.sleep(2)
    print(f"[ConfigMap edit -> {consumers} verdicts updated] median {statistics.median(seconds):.2f}s  "
          f"min {min(seconds):.2f}s  max {max(seconds):.2f}s  (goal <= 5 s)")  # fmt: skip
    return {"seconds": seconds}


if __name__ == "__main__":
    main()
