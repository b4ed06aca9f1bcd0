"""Benchmark (not a test): do two Celery workers snapshot several clusters in about half the time of one?

The local cluster is registered under several names (`--clusters`, default 4): each name is a cluster
of its own to Driftwatch (its own facts, lock and runs). After a first cycle of each (recording everything),
it times rounds of one snapshot task per cluster, sent at once, until every one has finished: with one
worker process, then with two (solo pools, so one task per process), interleaved `--repeat` times. The
workloads are whatever runs in the local cluster (e.g. bench/snapshot.py --keep). On 2 shared cores the
gain is bounded by the cores the worker and the API server get; the min-max says how noisy it was.

With `--profile` it also says where the time goes: the CPU seconds each side used during every round (the
worker processes, the local API server and etcd, PostgreSQL's processes; from /proc), so that the cores a round
kept busy can be compared with the wall time, and a cProfile of one steady cycle in this process (top lines).

Run: .venv/bin/python bench/workers.py [--clusters 4] [--repeat 3] [--profile]  (uses database driftwatch_bench)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://driftwatch:driftwatch@127.0.0.1:5432/driftwatch_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep the clusters and their first cycles for next time")
    parser.add_argument("--profile", action="store_true", help="CPU per process per round, and a cProfile")
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file (for bench/table.py)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    import importlib.util

    # bench/ is no package: load the snapshot benchmark's database set-up from its file.
    spec = importlib.util.spec_from_file_location("bench_snapshot", ROOT / "bench" / "snapshot.py")
    assert spec is not None and spec.loader is not None
    bench_snapshot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_snapshot)
    bench_snapshot.ensure_database()
    import django

    django.setup()
    from drift.models import Cluster
    from drift.snapshot import snapshot

    kubeconfig = ROOT / ".cluster" / "kubeconfig"
    names = [f"workers-{index}" for index in range(args.clusters)]
    if not args.reuse:
        Cluster.objects.filter(name__in=names).delete()
    clusters = [
        Cluster.objects.get_or_create(name=name, defaults={"kubeconfig_path": str(kubeconfig),
                                                           "api_requests_per_second": 0})[0]
        for name in names
    ]  # fmt: skip
    for cluster in clusters:
        if not cluster.runs.filter(status="succeeded").exists():
            snapshot(cluster)  # the first cycle records everything: the rounds below are steady cycles
    queue = f"driftwatch-bench-{uuid.uuid4().hex[:8]}"
    timings: dict[int, list[float]] = {1: [], 2: []}
    try:
        if args.profile:
            profile_one_cycle(clusters[0])
        for _ in range(args.repeat):
            for workers in (1, 2):
                timings[workers].append(one_round(clusters, workers, queue, args.profile))
    finally:
        if not args.reuse:
            Cluster.objects.filter(name__in=names).delete()
    print(f"{args.clusters} clusters, one snapshot task each, sent at once; wall time until all finished:")
    for workers, values in timings.items():
        print(f"  {workers} worker{'s' if workers > 1 else ''}: median {statistics.median(values):.2f} s "
              f"(min-max {min(values):.2f}-{max(values):.2f})")  # fmt: skip
    ratio = statistics.median(timings[2]) / statistics.median(timings[1])
    print(f"  two workers / one: {ratio:.2f} (goal about 0.5)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"clusters": args.clusters, "timings": timings, "ratio": ratio}))


def one_round(clusters: list, workers: int, queue: str, profile: bool = False) -> float:
    from dashboard.celery import app
    from drift.models import SnapshotRun
    from drift.tasks import snapshot_cluster

    processes = start_workers(workers, queue)
    try:
        app.conf.task_default_queue = queue
        before = {c.pk: c.runs.count() for c in clusters}
        cpu_before = cpu_seconds([process.pid for process in processes])
        started = time.monotonic()
        for cluster in clusters:
            snapshot_cluster.delay(cluster.pk)
        while True:
            done = all(c.runs.exclude(status=SnapshotRun.Status.RUNNING).count() > before[c.pk] for c in clusters)
            if done:
                wall = time.monotonic() - started
                if profile:
                    used = cpu_seconds([process.pid for process in processes])
                    spent = {side: used[side] - cpu_before[side] for side in used}
                    print(f"  {workers} worker(s): {wall:.2f} s wall; CPU s: "
                          + ", ".join(f"{side} {value:.2f}" for side, value in spent.items())
                          + f"; {sum(spent.values()) / wall:.2f} cores busy on average")  # fmt: skip
                return wall
            if time.monotonic() - started > 600:
                raise SystemExit("a round took over 10 minutes")
            time.sleep(0.05)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=600)  # a warm shutdown ends the running task first (minutes at 5,000 pods under load)


def cpu_seconds(worker_pids: list[int]) -> dict[str, float]:
    """User + system CPU seconds so far: the workers, the local cluster's kube-apiserver and etcd, and every
    PostgreSQL process (the server is shared: others' queries count too, so read it as an upper bound)."""
    tick = os.sysconf("SC_CLK_TCK")
    cluster_dir = str((ROOT / ".cluster").resolve())
    sides = {"workers": 0.0, "kube-apiserver": 0.0, "etcd": 0.0, "postgres": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(entry.name) in worker_pids:
            sides["workers"] += seconds
        elif cluster_dir in command and "kube-apiserver" in command:
            sides["kube-apiserver"] += seconds
        elif cluster_dir in command and "/etcd" in command:
            sides["etcd"] += seconds
        elif command.startswith("postgres"):
            sides["postgres"] += seconds
    return sides


def profile_one_cycle(cluster) -> None:
    """cProfile of one steady cycle, in this process: the top lines by cumulative and by own time."""
    import cProfile
    import pstats

    from drift.snapshot import snapshot

    profiler = cProfile.Profile()
    started = time.monotonic()
    profiler.enable()
    snapshot(cluster)
    profiler.disable()
    print(f"one steady cycle in this process: {time.monotonic() - started:.2f} s")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(r"drift/", 30)
    stats.sort_stats("tottime").print_stats(15)


def start_workers(count: int, queue: str) -> list[subprocess.Popen]:
    """Worker processes on the bench's own queue, once each says it is ready (their start is not timed)."""
    processes, logs = [], []
    for index in range(count):
        log_path = ROOT / "artifacts" / f"bench-worker-{queue}-{index}.log"
        log_path.parent.mkdir(exist_ok=True)
        log_path.write_bytes(b"")
        command = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-Q", queue, "--pool", "solo",
                   "-n", f"bench{index}-{queue}@%h", "--loglevel", "INFO", "--without-heartbeat",
                   "--without-mingle", "--without-gossip", "--prefetch-multiplier", "1"]  # fmt: skip
        with log_path.open("ab") as log:
            processes.append(subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        logs.append(log_path)
    deadline = time.monotonic() + 90
    while not all(b"ready." in log.read_bytes() for log in logs):
        if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
            raise SystemExit(f"a worker did not start; see {logs}")
        time.sleep(0.2)
    return processes


if __name__ == "__main__":
    main()
