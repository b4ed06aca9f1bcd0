"""Benchmark (not a test): ten clusters, 50,000 pods. The overview of all clusters against one, a `/metrics`
scrape (the read side), and the memory of the watcher and of a worker (the processes).

`--part read` (no cluster needed): ten clusters of 5,000 pods each (bench/overview.py's facts: 500 Deployments
over 10 namespaces, 3 consumptions per pod, one Deployment in ten stale) written to a throwaway database
(test_driftwatch_bench_scale, kept with --keepdb for bench/load.py --database) as snapshots record them, verdicts
stored. The overview is timed with the first cluster alone, then with all ten (median / p95 of `--repeat`, after
a warm-up), then `/metrics`. Honest because these pages read only stored rows: where the rows came from does
not change what the query planner and the templates do with them.

`--part watcher`: the same registrations, the watcher only (its watches of pods, ConfigMaps and Secrets; with
`--churn`, a ConfigMap edit every 10 s and a rolling restart every 5 minutes meanwhile).

`--part processes`: the local API server serves ten registrations (`scale-0` ...), each reading the whole local
cluster with bench/snapshot.py's simulated pods on kwok nodes (500 Deployments of 10 pods: create them once
with `--create`, `--delete` at the end), so ten registrations store ten times its pods (5,000 pods: 50,000).
A real Celery worker takes the ten first cycles (its RSS after them, then after each round of ten steady cycles
for `--soak-minutes`), then `manage.py watch` holds the ten leases (its RSS once all listed, then every 30 s for
the soak). Not measured: ten API servers each with their own 5,000 pods; here one holds them and answers ten
registrations' LISTs.

Run: .venv/bin/python bench/scale.py --part read [--repeat 20] [--keepdb]
     .venv/bin/python bench/scale.py --create; .venv/bin/python bench/scale.py --part processes [--soak-minutes 5]
     .venv/bin/python bench/scale.py --delete"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("HTTPS", "false")
KUBECONFIG = ROOT / ".cluster" / "kubeconfig"


def load_bench(name: str) -> Any:
    """bench/ is no package: load a sibling benchmark from its file."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["read", "processes", "watcher"], default="read")
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--pods-per-cluster", type=int, default=5000, help="--part read")
    parser.add_argument("--keepdb", action="store_true", help="--part read: keep the database for bench/load.py")
    parser.add_argument("--deployments", type=int, default=500)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--config-maps", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--soak-minutes", type=float, default=5)
    parser.add_argument("--churn", action="store_true", help="edits and restarts in the bench's namespaces meanwhile")
    parser.add_argument("--worker-soak-minutes", type=float, help="the worker's soak, if not --soak-minutes")
    parser.add_argument("--database", default="driftwatch_bench_scale", help="--part processes")
    parser.add_argument("--delete", action="store_true", help="only delete the workloads, then stop")
    parser.add_argument("--create", action="store_true", help="only create the workloads, then stop")
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file (for bench/table.py)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.part == "read" and not (args.create or args.delete):
        results = read_side(args)
        print_read(results)
        write(args.out, results)
        return
    base = os.environ.get("DATABASE_URL", "postgres://driftwatch:driftwatch@127.0.0.1:5432/driftwatch").rsplit("/", 1)
    os.environ["DATABASE_URL"] = f"{base[0]}/{args.database}"
    bench_snapshot = load_bench("snapshot")
    import django

    if args.delete or args.create:
        django.setup()
        from kubernetes import config as k8s_config

        api = k8s_config.new_client_from_config(config_file=str(KUBECONFIG))
        if args.delete:
            bench_snapshot.delete_workloads(api, args)
        else:
            create(bench_snapshot, api, args)
        return
    bench_snapshot.ensure_database()
    django.setup()
    results = processes(args)
    print_processes(results)
    write(args.out, results)


def write(out: Path | None, results: dict) -> None:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results))


def read_side(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.db import connection

    from drift import verdicts
    from drift.models import Cluster, Pod, SnapshotRun

    connection.settings_dict["NAME"] = "driftwatch_bench_scale"
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    grow = load_bench("overview").grow
    try:
        results: dict[str, Any] = {"clusters": args.clusters}
        for index in range(args.clusters):
            started = time.monotonic()
            cluster = Cluster.objects.create(name=f"scale-{index}", kubeconfig_path="/nonexistent")
            grow(cluster, 0, args.pods_per_cluster)
            SnapshotRun.objects.create(cluster=cluster, status="succeeded", finished_at=cluster.created_at)
            verdicts.facts_changed(cluster)
            print(f"cluster {cluster.name}: {args.pods_per_cluster} pods written ({time.monotonic() - started:.0f} s)")
            if index == 0:
                results["one_cluster_pods"] = Pod.objects.count()
                results["overview_one"] = time_page("/", args.repeat)
                print(f"overview, one cluster: {summary(results['overview_one'])}")
        results["pods"] = Pod.objects.count()
        results["overview_all"] = time_page("/", args.repeat)
        print(f"overview, every cluster: {summary(results['overview_all'])}")
        results["metrics"] = time_page("/metrics", args.repeat)
        print(f"/metrics: {summary(results['metrics'])}")
        return results
    finally:
        if not args.keepdb:
            connection.creation.destroy_test_db(test_name, verbosity=0)


def create(bench_snapshot: Any, api: Any, args: argparse.Namespace) -> None:
    started = time.monotonic()
    pods = args.deployments * args.replicas
    bench_snapshot.create_workloads(api, args)
    bench_snapshot.wait_for_pods(api, pods, timeout=1800)
    print(f"workloads ready: {pods} pods ({time.monotonic() - started:.0f} s)")


def processes(args: argparse.Namespace) -> dict:
    from drift.models import Cluster, Pod

    names = [f"scale-{index}" for index in range(args.clusters)]
    Cluster.objects.filter(name__in=names).delete()
    # No request cap: the benchmark compares Driftwatch's own work. Probes off: kwok pods have no files.
    clusters = [
        Cluster.objects.create(
            name=name, kubeconfig_path=str(KUBECONFIG), api_requests_per_second=0, file_probes=Cluster.FileProbes.NEVER
        )
        for name in names
    ]
    results: dict[str, Any] = {
        "clusters": args.clusters, "soak_minutes": args.soak_minutes, "churn": args.churn,
        "worker_soak_minutes": args.worker_soak_minutes or args.soak_minutes,
    }  # fmt: skip
    if args.part == "watcher":  # the watcher alone (no worker)
        results["watcher_rss"] = soak_watcher(clusters, args.soak_minutes, churn_of(args))
        return results
    worker = start_worker()
    try:
        from drift.tasks import snapshot_cluster

        started = time.monotonic()
        for cluster in clusters:
            snapshot_cluster.delay(cluster.pk)
        wait_for_runs(clusters, 1)
        results["first_cycles_s"] = time.monotonic() - started
        results["pods"] = Pod.objects.filter(cluster__in=clusters).count()
        print(f"{results['pods']} pods recorded by one worker ({results['first_cycles_s']:.0f} s)")
        minutes = args.worker_soak_minutes or args.soak_minutes
        results["worker_rss"] = soak_worker(worker, clusters, minutes, churn_of(args))
    finally:
        stop(worker)
    results["watcher_rss"] = soak_watcher(clusters, args.soak_minutes, churn_of(args))
    return results


def churn_of(args: argparse.Namespace) -> Churn | None:
    """A soak's own churn (its own counts), or None without --churn."""
    return Churn(ROOT, args.namespaces) if args.churn else None


def time_page(path: str, repeat: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from drift.models import Membership

    viewer, created = get_user_model().objects.get_or_create(username="scale-viewer")
    if created:
        Membership.objects.create(user=viewer, role="viewer", namespaces=[])
    client = Client()
    client.force_login(viewer)
    client.get(path)  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
        "min_ms": times[0],
        "max_ms": times[-1],
        "bytes": len(response.content),
    }


def summary(timing: dict) -> str:
    return (f"median {timing['median_ms']:.0f} ms, p95 {timing['p95_ms']:.0f} ms "
            f"(min-max {timing['min_ms']:.0f}-{timing['max_ms']:.0f}), {timing['bytes']:,} bytes")  # fmt: skip


def child_env() -> dict[str, str]:
    return {**os.environ, "DRIFTWATCH_CELERY_QUEUE": QUEUE}


QUEUE = f"driftwatch-bench-scale-{uuid.uuid4().hex[:8]}"


def start_worker() -> subprocess.Popen:
    from dashboard.celery import app

    app.conf.task_default_queue = QUEUE
    log_path = ROOT / "artifacts" / f"bench-scale-worker-{QUEUE}.log"
    log_path.parent.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-Q", QUEUE, "--pool", "solo",
               "--loglevel", "INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"]  # fmt: skip
    with log_path.open("wb") as log:
        worker = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while b"ready." not in log_path.read_bytes():
        if time.monotonic() > deadline or worker.poll() is not None:
            raise SystemExit(f"the worker did not start; see {log_path}")
        time.sleep(0.2)
    return worker


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=60)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for_runs(clusters: list, ended: int, timeout: float = 1800) -> None:
    from drift.models import SnapshotRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c.runs.exclude(status=SnapshotRun.Status.RUNNING).count() >= ended for c in clusters):
            return
        time.sleep(1)
    raise SystemExit("snapshots did not end in time")


def soak_worker(worker: subprocess.Popen, clusters: list, minutes: float, churn: Churn | None = None) -> dict:
    """The worker's RSS after the first cycles, then after each round of one snapshot per cluster (the steady
    cycles a beat would send, back to back, as fast as the one worker takes them) for `minutes`;
    with `churn`, one of its edits (and, every 5 minutes, a restart) before each round."""
    from drift.models import SnapshotRun
    from drift.tasks import snapshot_cluster

    samples = [rss_mib(worker.pid)]
    print(f"worker RSS after the first cycles: {samples[0]:.0f} MiB")
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        ended = {c.pk: c.runs.exclude(status=SnapshotRun.Status.RUNNING).count() for c in clusters}
        if churn is not None:
            churn.step()
        for cluster in clusters:
            snapshot_cluster.delay(cluster.pk)
        for cluster in clusters:
            wait_for_runs([cluster], ended[cluster.pk] + 1)
        samples.append(rss_mib(worker.pid))
        print(f"  worker RSS after a round: {samples[-1]:.0f} MiB")
    result = {"samples_mib": samples, "first_mib": samples[0], "last_mib": samples[-1], "peak_mib": max(samples)}
    if churn is not None:
        result |= {"config_map_edits": churn.edits, "restarts": churn.restarts}
    return result


def soak_watcher(clusters: list, minutes: float, churn: Churn | None = None) -> dict:
    """`manage.py watch` holding every cluster's lease: its RSS once each cluster's watches listed, then every 30 s
    for `minutes`: idle, or with `churn` a ConfigMap edit every 10 s and a rolling restart every 5 minutes."""
    from django.utils import timezone

    from drift.models import ClusterLease

    log_path = ROOT / "artifacts" / "bench-scale-watch.log"
    with log_path.open("wb") as log:
        watcher = subprocess.Popen([sys.executable, "manage.py", "watch"], cwd=ROOT, env=child_env(), stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            leases = ClusterLease.objects.filter(cluster__in=clusters)
            held = [lease for lease in leases if lease.held_at(timezone.now())]
            if len(held) == len(clusters) and all(len(lease.resume_from) >= 2 for lease in held):
                break
            time.sleep(2)
        else:
            raise SystemExit(f"the watcher did not hold every cluster; see {log_path}")
        samples = [rss_mib(watcher.pid)]
        print(f"watcher RSS, {len(clusters)} clusters watched: {samples[0]:.0f} MiB")
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline:
            next_sample = time.monotonic() + 30
            while churn is not None and time.monotonic() < next_sample:
                churn.step()
                time.sleep(max(0.0, min(10.0, next_sample - time.monotonic())))
            time.sleep(max(0.0, next_sample - time.monotonic()))
            samples.append(rss_mib(watcher.pid))
        print(f"  watcher RSS over the soak: {' '.join(f'{s:.0f}' for s in samples)} MiB")
    finally:
        stop(watcher)
    result = {"samples_mib": samples, "first_mib": samples[0], "last_mib": samples[-1], "peak_mib": max(samples)}
    if churn is not None:
        result |= {"config_map_edits": churn.edits, "restarts": churn.restarts}
        print(
            f"  while {churn.edits} ConfigMap edits and {churn.restarts} rolling restarts "
            f"({churn.restarts * churn.replicas} pods replaced) reached the {len(clusters)} registrations"
        )
    return result


class Churn:
    """What a busy cluster does during the soak: a ConfigMap of the bench's edited every 10 s (each one re-judges
    its consumers in every registration), a Deployment restarted every 5 minutes (its pods replaced). Without
    it an idle soak shows only that nothing grows when nothing happens."""

    replicas = 10

    def __init__(self, root: Path, namespaces: int) -> None:
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        api = k8s_config.new_client_from_config(config_file=str(root / ".cluster" / "kubeconfig"))
        self.core, self.apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
        self.namespaces = namespaces
        self.edits = self.restarts = 0
        self.last_restart = time.monotonic()

    def step(self) -> None:
        namespace = f"bench-{self.edits % self.namespaces}"
        name = f"config-{(self.edits // self.namespaces) % 5}"
        self.core.patch_namespaced_config_map(name, namespace, {"data": {"log_level": f"DEBUG-{self.edits}"}})
        self.edits += 1
        if time.monotonic() - self.last_restart >= 300:
            namespace = f"bench-{self.restarts % self.namespaces}"
            deployment = f"app-{self.restarts}"  # app-K lives in bench-(K mod namespaces)
            stamp = {"spec": {"template": {"metadata": {"annotations": {"bench/restarted-at": str(time.time())}}}}}
            self.apps.patch_namespaced_deployment(deployment, namespace, stamp)
            self.restarts += 1
            self.last_restart = time.monotonic()


def print_read(results: dict) -> None:
    one, every = results["overview_one"], results["overview_all"]
    print(f"\n{results['clusters']} clusters, {results['pods']:,} pods stored:")
    print(f"  overview, one cluster ({results['one_cluster_pods']:,} pods): {summary(one)}")
    print(f"  overview, every cluster: {summary(every)}; {every['median_ms'] / one['median_ms']:.2f}x one cluster")
    print(f"  /metrics: {summary(results['metrics'])}")


def print_processes(results: dict) -> None:
    print(f"\n{results['clusters']} registrations, {results.get('pods', 0):,} pods stored:")
    for name in ("worker", "watcher"):
        rss = results.get(f"{name}_rss")
        if rss is None:
            continue
        minutes = results["worker_soak_minutes"] if name == "worker" else results["soak_minutes"]
        busy = f", {rss['config_map_edits']} edits, {rss['restarts']} restarts meanwhile" if "restarts" in rss else ""
        print(f"  {name} RSS: {rss['first_mib']:.0f} MiB, {rss['last_mib']:.0f} after a {minutes:g}-minute soak "
              f"(peak {rss['peak_mib']:.0f}{busy})")  # fmt: skip


if __name__ == "__main__":
    main()
