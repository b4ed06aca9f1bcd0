"""Chaos run (not a test): faults, one at a time, on a Driftwatch stack of its own, and what each cost.

Everything it breaks it started itself, on loopback, in a temporary folder: a PostgreSQL (Debian's binaries,
`initdb`), a redis-server, a control plane of its own (`kwokctl --runtime binary` with the cached binaries
of scripts/cluster, its own KWOK_WORKDIR, simulated nodes for the pods), and Driftwatch's processes (gunicorn,
a Celery worker, beat, `manage.py watch`). The machine's shared PostgreSQL, Redis and cluster are never
touched. Under bench/locustfile.py's 50 users (bench/chaos_load.py) and a stream of ConfigMap edits, it
injects each fault in turn:

  worker mid-snapshot   kill -9 the Celery worker while a snapshot runs, start it again
  worker mid-rollout    kill -9 the Celery worker while a batch rollout runs, start it again
  API server (watch)    stop kube-apiserver while the watcher watches, start it again
  API server (batch)    stop kube-apiserver during a batch rollout, start it again
  PostgreSQL            pg_ctl stop -m fast, start again
  Redis                 stop redis-server (no persistence: queued tasks are lost), start again
  watcher               kill -9 `manage.py watch`, start it again

and prints one row per fault: the requests the load made in the fault's window, how many failed and how many
answered 500, how long the dependency was down, the time to recover (from the fault until every check of
recovery passes: snapshots succeed again, the batch ended, the newest edit is stored, the overview answers),
how long 500s went on after the dependency was back, versions missing (every resourceVersion the API server
answered the edit stream with, against the versions Driftwatch stored; must be 0) and duplicates (a version
stored twice, an audit entry written twice, a rollout sent twice: must be 0). bench/chaos_checks.py holds the
comparisons. Like kubelet or systemd would, the harness restarts a control-plane component that exits by
itself (kube-controller-manager and kube-scheduler exit when they lose their lease during an outage).

Run: make chaos  (or .venv/bin/python bench/chaos.py [--users 50] [--keep]); about 10 minutes on 2 cores."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
VENV = ROOT / ".venv" / "bin"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "driftwatch"
CLUSTER = "chaos"
NAMESPACE = "chaos"
CONFIG_MAPS = 4
DEPLOYMENTS = 6
SNAPSHOT_INTERVAL = 10
RECOVERY_TIMEOUT = 150.0


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


def versions() -> dict[str, str]:
    found = {}
    for line in (ROOT / "scripts" / "versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found[key] = value
    return found


# -- child processes ------------------------------------------------------------------------------------------


@dataclass
class Child:
    """A process the harness started (in a session of its own, so a kill reaches its children too)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path = ROOT
    process: subprocess.Popen | None = None

    def start(self) -> Child:
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def kill9(self) -> None:
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 20) -> None:
        if not self.running or self.process is None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def log_has(self, text: str, since: int = 0) -> bool:
        try:
            return text.encode() in self.log_path.read_bytes()[since:]
        except FileNotFoundError:
            return False

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0


def wait_until(what: str, check: Callable[[], bool], timeout: float = 120, every: float = 0.5) -> float:
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # a dependency still coming back
            pass
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# -- the stack ------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    folder: Path
    users: int
    children: dict[str, Child] = field(default_factory=dict)
    components: dict[str, Child] = field(default_factory=dict)  # the control plane's, supervised
    held: set[str] = field(default_factory=set)  # components stopped on purpose
    env: dict[str, str] = field(default_factory=dict)
    pg_bin: Path = Path()
    pg_port: int = 0
    redis_port: int = 0
    web_port: int = 0
    kubeconfig: Path = Path()
    kwok_env: dict[str, str] = field(default_factory=dict)
    kwok_workdir: Path = Path()
    session: str = ""
    stop_supervising: threading.Event = field(default_factory=threading.Event)

    # PostgreSQL -------------------------------------------------------------------------------------------

    def start_postgres(self) -> None:
        self.pg_bin = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1])
        data = self.folder / "postgres"
        data.mkdir()
        shutil.chown(data, "postgres", "postgres")
        self.pg_port = free_port()
        self._as_postgres([str(self.pg_bin / "initdb"), "-D", str(data), "-U", "driftwatch", "--auth=trust",
                           "-E", "UTF8", "--no-sync"])  # fmt: skip
        self.postgres_up()
        self._as_postgres([str(self.pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U",
                           "driftwatch", "driftwatch"])  # fmt: skip

    def _as_postgres(self, argv: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, stdout=subprocess.DEVNULL,
                       cwd=self.folder)  # fmt: skip

    def postgres_up(self) -> None:
        data = self.folder / "postgres"
        options = f"-p {self.pg_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        self._as_postgres([str(self.pg_bin / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w",
                           "-o", options, "start"])  # fmt: skip

    def postgres_down(self) -> None:
        self._as_postgres([str(self.pg_bin / "pg_ctl"), "-D", str(self.folder / "postgres"), "-m", "fast", "-w",
                           "stop"])  # fmt: skip

    # Redis -----------------------------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis_port = free_port()
        self.children["redis"] = Child(
            "redis",
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "", "--appendonly",
             "no", "--dir", str(self.folder)],
            dict(os.environ), self.folder / "redis.log",
        ).start()  # fmt: skip
        wait_until("redis", lambda: port_open(self.redis_port), 30)

    # the control plane -------------------------------------------------------------------------------------

    def start_cluster(self) -> None:
        pinned = versions()
        kube = CACHE / f"kubernetes-{pinned['KUBE_VERSION']}"
        self.kwok_workdir = self.folder / "kwok"
        self.kubeconfig = self.folder / "kubeconfig"
        self.kwok_env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()), "KWOK_WORKDIR": str(self.kwok_workdir),
            "KWOK_KUBE_VERSION": pinned["KUBE_VERSION"], "KWOK_KUBECTL_BINARY": str(kube / "kubectl"),
        }  # fmt: skip
        name = f"driftwatch-chaos-{os.getpid()}"
        self.kwok_env["CHAOS_CLUSTER_NAME"] = name
        kwokctl = CACHE / f"kwok-{pinned['KWOK_VERSION']}" / "kwokctl"
        subprocess.run(
            [str(kwokctl), "--name", name, "create", "cluster", "--runtime", "binary",
             "--kube-apiserver-binary", str(kube / "kube-apiserver"),
             "--kube-controller-manager-binary", str(kube / "kube-controller-manager"),
             "--kube-scheduler-binary", str(kube / "kube-scheduler"),
             "--etcd-binary", str(CACHE / f"etcd-{pinned['ETCD_VERSION']}" / "etcd"),
             "--kwok-controller-binary", str(CACHE / f"kwok-{pinned['KWOK_VERSION']}" / "kwok"),
             "--kubeconfig", str(self.kubeconfig), "--wait", "3m"],
            env=self.kwok_env, check=True, stdout=subprocess.DEVNULL, stderr=(self.folder / "kwokctl.log").open("ab"),
        )  # fmt: skip
        subprocess.run([str(kwokctl), "--name", name, "scale", "node", "--replicas", "2"], env=self.kwok_env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        self._adopt_components(self.kwok_workdir / "clusters" / name)
        threading.Thread(target=self._supervise, name="supervise-control-plane", daemon=True).start()

    def _adopt_components(self, cluster_dir: Path) -> None:
        """Take over the processes kwokctl started: same command line, environment and folder, so that the
        harness can stop one and start it again exactly as it was (kwokctl 0.8 has no per-component restart)."""
        for pid_file in sorted((cluster_dir / "pids").glob("*.pid")):
            pid = int(pid_file.read_text().strip())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            environ = dict(
                item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item
            )
            child = Child(pid_file.stem, [arg.decode() for arg in argv], environ,
                          cluster_dir / "logs" / f"{pid_file.stem}.log", cwd=cluster_dir)  # fmt: skip
            child.process = None
            child.adopted_pid = pid  # type: ignore[attr-defined]
            self.components[pid_file.stem] = child

    def component_running(self, name: str) -> bool:
        child = self.components[name]
        if child.process is not None:
            return child.running
        try:
            os.kill(child.adopted_pid, 0)  # type: ignore[attr-defined]
        except ProcessLookupError:
            return False
        return Path(f"/proc/{child.adopted_pid}").exists() and _state(child.adopted_pid) != "Z"  # type: ignore[attr-defined]

    def stop_component(self, name: str) -> None:
        self.held.add(name)
        child = self.components[name]
        if child.process is not None:
            child.stop(timeout=30)
            return
        pid = child.adopted_pid  # type: ignore[attr-defined]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while self.component_running(name) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def start_component(self, name: str) -> None:
        self.components[name].start()
        self.held.discard(name)

    def _supervise(self) -> None:
        while not self.stop_supervising.wait(1.0):
            for name in list(self.components):
                if name not in self.held and not self.component_running(name):
                    log(f"{name} exited by itself; starting it again")
                    self.components[name].start()

    def api_ready(self) -> bool:
        from kubernetes import client as k8s

        api = self.kube()
        try:
            k8s.CoreV1Api(api).get_api_resources(_request_timeout=3)
            return True
        except Exception:
            return False
        finally:
            api.close()

    def kube(self) -> Any:
        from kubernetes import config as k8s_config

        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def delete_cluster(self) -> None:
        self.stop_supervising.set()
        for name in list(self.components):
            self.held.add(name)
            if self.components[name].process is not None:
                self.components[name].stop(timeout=10)
        name = self.kwok_env.get("CHAOS_CLUSTER_NAME", "")
        if name:
            kwokctl = CACHE / f"kwok-{versions()['KWOK_VERSION']}" / "kwokctl"
            subprocess.run([str(kwokctl), "--name", name, "delete", "cluster"], env=self.kwok_env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # fmt: skip

    # Driftwatch -------------------------------------------------------------------------------------------

    def driftwatch_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": f"postgres://driftwatch:driftwatch@127.0.0.1:{self.pg_port}/driftwatch",
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "HTTPS": "false",
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DRIFTWATCH_CELERY_QUEUE": "chaos",
            "DRIFTWATCH_BEAT_TICK_SECONDS": "2",
            "KUBECONFIG": str(self.kubeconfig),
            "LOG_LEVEL": "INFO",
        }

    def start_driftwatch(self) -> None:
        self.env = self.driftwatch_env()
        python = str(VENV / "python")
        subprocess.run([python, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=self.env, check=True)
        subprocess.run([python, "manage.py", "cluster", "add", CLUSTER, "--kubeconfig", str(self.kubeconfig),
                        "--actor", "chaos"], cwd=ROOT, env=self.env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        self.web_port = free_port()
        self.children["web"] = Child(
            "web",
            [str(VENV / "gunicorn"), "dashboard.wsgi", "--bind", f"127.0.0.1:{self.web_port}", "--workers", "2",
             "--threads", "4", "--log-level", "warning"],
            self.env, self.folder / "web.log",
        ).start()  # fmt: skip
        self.children["worker"] = Child(
            "worker",
            [str(VENV / "celery"), "-A", "dashboard", "worker", "-Q", "chaos", "--concurrency", "2", "--loglevel",
             "INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"],
            self.env, self.folder / "worker.log",
        ).start()  # fmt: skip
        self.children["beat"] = Child(
            "beat",
            [str(VENV / "celery"), "-A", "dashboard", "beat", "--loglevel", "INFO", "--schedule",
             str(self.folder / "celerybeat-schedule")],
            self.env, self.folder / "beat.log",
        ).start()  # fmt: skip
        self.children["watch"] = Child("watch", [python, "manage.py", "watch"], self.env,
                                       self.folder / "watch.log").start()  # fmt: skip
        wait_until("gunicorn", lambda: self.get("/healthz") == 200, 90)
        wait_until("the worker", lambda: self.children["worker"].log_has("ready."), 90)

    def restart(self, name: str) -> None:
        child = self.children[name]
        child.process = None
        child.start()

    def get(self, path: str, session: str = "") -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}")
        if session:
            request.add_header("Cookie", f"sessionid={session}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return 0

    def teardown(self) -> None:
        for name in ("load", "watch", "beat", "worker", "web"):
            if name in self.children:
                self.children[name].stop(timeout=15)
        self.delete_cluster()
        if "redis" in self.children:
            self.children["redis"].stop()
        if self.pg_port:
            with contextlib.suppress(Exception):
                self.postgres_down()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "X"


# -- what runs in the cluster, and the edit stream ------------------------------------------------------------


def seed(stack: Stack) -> None:
    from kubernetes import client as k8s

    api = stack.kube()
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    wait_until("the default service account", lambda: core.read_namespaced_service_account("default", NAMESPACE), 60)
    for index in range(CONFIG_MAPS):
        core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": f"cm-{index}"}, "data": {"edit": "0"}})
    for index in range(DEPLOYMENTS):
        labels = {"app": f"dep-{index}"}
        apps.create_namespaced_deployment(NAMESPACE, {
            "metadata": {"name": f"dep-{index}"},
            "spec": {
                "replicas": 1, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {
                    "containers": [{"name": "app", "image": "busybox",
                                    "envFrom": [{"configMapRef": {"name": f"cm-{index % CONFIG_MAPS}"}}]}],
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                }},
            },
        })  # fmt: skip

    def all_ready() -> bool:
        listed = apps.list_namespaced_deployment(NAMESPACE).items
        return len(listed) == DEPLOYMENTS and all((d.status.ready_replicas or 0) >= 1 for d in listed)

    wait_until("the deployments", all_ready, 120, every=1)
    api.close()


@dataclass
class EditStream:
    """Patches the ConfigMaps round-robin, each edit a new content, and keeps every resourceVersion the API
    server answered with: the versions Driftwatch must have stored."""

    stack: Stack
    every: float = 0.4
    answered: list[tuple[float, str, str]] = field(default_factory=list)  # (time, name, resourceVersion)
    failed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from kubernetes import client as k8s

        api = self.stack.kube()
        core = k8s.CoreV1Api(api)
        count = 0
        while not self.stop.wait(self.every):
            count += 1
            name = f"cm-{count % CONFIG_MAPS}"
            try:
                answer = core.patch_namespaced_config_map(
                    name, NAMESPACE, {"data": {"edit": str(count)}}, _request_timeout=5
                )
                self.answered.append((time.time(), name, answer.metadata.resource_version))
            except Exception:
                self.failed += 1
                time.sleep(0.5)
        api.close()


# -- one fault ------------------------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    opened: float = 0.0  # the fault's window (for the requests) opens here and ends at `ended`
    started: float = 0.0
    back: float = 0.0
    recovered: float = 0.0
    ended: float = 0.0
    requests: int = 0
    failed: int = 0
    errors_500: int = 0
    late_500: float = 0.0
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def down(self) -> float:
        return self.back - self.started

    @property
    def recover(self) -> float:
        return self.recovered - self.started


class Chaos:
    def __init__(self, stack: Stack, edits: EditStream) -> None:
        self.stack = stack
        self.edits = edits
        self.rows: list[Row] = []
        self.generations: dict[str, int] = {}
        self.seen_duplicates: set[str] = set()
        self.probe_session = ""

    # database reads (the harness's own connection; reopened after PostgreSQL restarts) ---------------------

    def db(self, read: Callable[[], Any]) -> Any:
        from django.db import close_old_connections, connection

        for _ in range(60):
            try:
                return read()
            except Exception:
                close_old_connections()
                connection.close()
                time.sleep(0.5)
        return read()

    def last_snapshot_ok_after(self, moment: float) -> bool:
        from datetime import UTC, datetime

        from drift.models import SnapshotRun

        since = datetime.fromtimestamp(moment, UTC)
        return self.db(
            lambda: SnapshotRun.objects.filter(
                cluster__name=CLUSTER, started_at__gt=since, status=SnapshotRun.Status.SUCCEEDED
            ).exists()
        )

    def snapshot_running(self) -> bool:
        from drift.models import SnapshotRun

        return self.db(
            lambda: (
                SnapshotRun.objects.filter(cluster__name=CLUSTER, status=SnapshotRun.Status.RUNNING)
                .filter(finished_at=None)
                .exists()
            )
        )

    def newest_edit_stored_after(self, moment: float) -> bool:
        """The newest edit the API server answered after `moment` is stored (the watcher, or a snapshot, caught
        up with the stream)."""
        import chaos_checks

        after = [(name, version) for at, name, version in list(self.edits.answered) if at >= moment]
        if not after:
            return False
        newest = after[-1]
        return newest in set(self.db(lambda: chaos_checks.stored_versions(CLUSTER, NAMESPACE)))

    def overview_answers(self) -> bool:
        return self.stack.get("/", self.probe_session) == 200

    # the checks after a fault ------------------------------------------------------------------------------

    def check(self, row: Row, before: float) -> None:
        """Versions answered before `before` that are not stored; every duplicate found that was not found at
        an earlier check."""
        import chaos_checks

        answered = [(name, version) for at, name, version in list(self.edits.answered) if at < before]
        stored = self.db(lambda: chaos_checks.stored_versions(CLUSTER, NAMESPACE))
        missing = chaos_checks.missing_versions(answered, stored)
        if missing:  # the watcher may lag a little under load: give it a few seconds
            time.sleep(8)
            stored = self.db(lambda: chaos_checks.stored_versions(CLUSTER, NAMESPACE))
            missing = chaos_checks.missing_versions(answered, stored)
        already = {entry for done in self.rows for entry in done.missing}
        row.missing = [f"configmap/{name} rv={version}" for name, version in missing]
        row.missing = [entry for entry in row.missing if entry not in already]
        duplicates = [f"version configmap/{n} rv={v} stored twice" for n, v in chaos_checks.duplicate_versions(stored)]
        duplicates += self.db(lambda: chaos_checks.duplicate_audit_entries(CLUSTER))
        twice, lost = chaos_checks.rollout_mismatches(
            self.db(lambda: chaos_checks.applied_rollouts(CLUSTER, NAMESPACE)), self.generation_bumps()
        )
        duplicates += twice
        row.duplicates = [entry for entry in duplicates if entry not in self.seen_duplicates]
        self.seen_duplicates.update(duplicates)
        row.missing += [f"rollout lost: {entry}" for entry in lost if f"rollout lost: {entry}" not in already]

    def generation_bumps(self) -> dict[str, int]:
        from kubernetes import client as k8s

        api = self.stack.kube()
        try:
            listed = k8s.AppsV1Api(api).list_namespaced_deployment(NAMESPACE, _request_timeout=10).items
        finally:
            api.close()
        return {d.metadata.name: d.metadata.generation - self.generations[d.metadata.name] for d in listed}

    def record_generations(self) -> None:
        from kubernetes import client as k8s

        api = self.stack.kube()
        try:
            listed = k8s.AppsV1Api(api).list_namespaced_deployment(NAMESPACE).items
        finally:
            api.close()
        self.generations = {d.metadata.name: d.metadata.generation for d in listed}

    # batches -------------------------------------------------------------------------------------------------

    def queue_batch(self) -> str:
        from drift.models import Cluster
        from drift.rollout import Target, queue_batch

        def queue() -> str:
            cluster = Cluster.objects.get(name=CLUSTER)
            targets = [(cluster, Target("Deployment", NAMESPACE, f"dep-{index}")) for index in range(DEPLOYMENTS)]
            return str(queue_batch(targets, "chaos"))

        return self.db(queue)

    def batch_going(self, batch: str) -> bool:
        from drift.models import Rollout

        return self.db(
            lambda: Rollout.objects.filter(
                batch=batch, status__in=[Rollout.Status.IN_PROGRESS, Rollout.Status.PATCHING]
            ).exists()
        )

    def batch_ended(self, batch: str) -> bool:
        import chaos_checks

        return not self.db(lambda: chaos_checks.unfinished_rollouts(batch))

    def batch_outcome(self, batch: str) -> str:
        from drift.models import Rollout

        statuses = self.db(lambda: list(Rollout.objects.filter(batch=batch).values_list("status", flat=True)))
        return ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))

    # running one fault ---------------------------------------------------------------------------------------

    def run(self, fault: str, inject: Callable[[Row], None], recovered: Callable[[Row], bool]) -> Row:
        row = Row(fault)
        log(f"fault: {fault}")
        row.opened = row.started = time.time()  # an injection that waits for its moment sets `started` again
        inject(row)
        if not row.back:
            row.back = time.time()
        try:
            wait_until(f"recovery from {fault}", lambda: recovered(row), RECOVERY_TIMEOUT, every=0.5)
            row.recovered = time.time()
        except RuntimeError as error:
            row.recovered = time.time()
            row.notes.append(f"not recovered: {error}")
        time.sleep(3)
        self.check(row, before=time.time() - 2)
        row.ended = time.time()
        self.rows.append(row)
        log(f"  down {row.down:.1f} s, recovered after {row.recover:.1f} s; missing {len(row.missing)}, "
            f"duplicates {len(row.duplicates)} {'; '.join(row.notes)}")  # fmt: skip
        return row

    def kill_worker_mid_snapshot(self, row: Row) -> None:
        wait_until("a snapshot running", self.snapshot_running, 60, every=0.1)
        row.started = time.time()
        self.stack.children["worker"].kill9()
        time.sleep(2)
        self.stack.restart("worker")
        row.back = time.time()

    def kill_worker_mid_rollout(self, row: Row) -> None:
        row.batch = self.queue_batch()  # type: ignore[attr-defined]
        wait_until("the batch's first rollouts going", lambda: self.batch_going(row.batch), 60, every=0.1)  # type: ignore[attr-defined]
        row.started = time.time()
        self.stack.children["worker"].kill9()
        time.sleep(2)
        self.stack.restart("worker")
        row.back = time.time()

    def restart_api_server(self, row: Row, hold: float = 5) -> None:
        row.started = time.time()
        self.stack.stop_component("kube-apiserver")
        time.sleep(hold)
        self.stack.start_component("kube-apiserver")
        wait_until("the API server", self.stack.api_ready, 120)
        row.back = time.time()

    def restart_api_server_mid_batch(self, row: Row) -> None:
        row.batch = self.queue_batch()  # type: ignore[attr-defined]
        wait_until("the batch's first rollouts going", lambda: self.batch_going(row.batch), 60, every=0.1)  # type: ignore[attr-defined]
        self.restart_api_server(row)

    def restart_postgres(self, row: Row) -> None:
        self.stack.postgres_down()
        time.sleep(5)
        self.stack.postgres_up()
        row.back = time.time()

    def restart_redis(self, row: Row) -> None:
        self.stack.children["redis"].stop()
        time.sleep(5)
        self.stack.restart("redis")
        wait_until("redis", lambda: port_open(self.stack.redis_port))
        row.back = time.time()

    def kill_watcher(self, row: Row) -> None:
        self.stack.children["watch"].kill9()
        time.sleep(5)
        self.stack.restart("watch")
        row.back = time.time()

    def caught_up(self, row: Row) -> bool:
        """Every version the API server answered the edit stream with until a second ago is stored, and at least
        one of them was answered after the fault's end (the newest alone could come from a snapshot while the
        watcher still has versions to catch up)."""
        import chaos_checks

        if not self.newest_edit_stored_after(row.back + 1):
            return False
        answered = [(name, version) for at, name, version in list(self.edits.answered) if at < time.time() - 1]
        stored = self.db(lambda: chaos_checks.stored_versions(CLUSTER, NAMESPACE))
        already = {entry for done in self.rows for entry in done.missing}
        missing = [f"configmap/{n} rv={v}" for n, v in chaos_checks.missing_versions(answered, stored)]
        return not [entry for entry in missing if entry not in already]

    def all_faults(self) -> None:
        def snapshots_again(row: Row) -> bool:
            return self.last_snapshot_ok_after(row.back) and self.caught_up(row)

        def batch_done(row: Row) -> bool:
            done = self.batch_ended(row.batch) and self.caught_up(row)  # type: ignore[attr-defined]
            if done:
                row.notes.append(f"batch: {self.batch_outcome(row.batch)}")  # type: ignore[attr-defined]
            return done

        def everything(row: Row) -> bool:
            return self.caught_up(row) and self.overview_answers() and self.last_snapshot_ok_after(row.back)

        self.run("worker kill -9 mid-snapshot", self.kill_worker_mid_snapshot, snapshots_again)
        self.run("worker kill -9 mid-rollout", self.kill_worker_mid_rollout, batch_done)
        self.run("API server restart (watch)", self.restart_api_server, everything)
        self.run("API server restart (batch)", self.restart_api_server_mid_batch, batch_done)
        self.run("PostgreSQL restart", self.restart_postgres, everything)
        self.run("Redis restart", self.restart_redis, everything)
        self.run("watcher kill -9, restart", self.kill_watcher, self.caught_up)


# -- the table ------------------------------------------------------------------------------------------------


def read_requests(path: Path) -> list[tuple[float, int, bool]]:
    requests = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split(" ", 3)
            if len(parts) == 4:
                requests.append((float(parts[0]), int(parts[1]), parts[2] == "1"))
    return requests


def count_requests(rows: list[Row], requests: list[tuple[float, int, bool]]) -> None:
    for row in rows:
        inside = [r for r in requests if (row.opened or row.started) <= r[0] < row.ended]
        row.requests = len(inside)
        row.failed = sum(1 for r in inside if r[2])
        late = [at - row.back for at, status, _ in inside if status >= 500 and at > row.back]
        row.errors_500 = sum(1 for r in inside if r[1] >= 500)
        row.late_500 = max(late, default=0.0)


def table(rows: list[Row]) -> str:
    header = ("fault", "requests", "failed (500)", "down s", "recover s", "500 after back s", "versions missing",
              "duplicates")  # fmt: skip
    lines = [header]
    for row in rows:
        lines.append((row.fault, str(row.requests), f"{row.failed} ({row.errors_500})", f"{row.down:.1f}",
                      f"{row.recover:.1f}", f"{row.late_500:.1f}", str(len(row.missing)),
                      str(len(row.duplicates))))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) + " |" for line in lines]
    text.insert(1, "| " + " | ".join("-" * width for width in widths) + " |")
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) afterwards")
    parser.add_argument("--only", default="", help="run only the faults whose name contains this (development)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if os.geteuid() != 0:
        raise SystemExit("bench/chaos.py runs PostgreSQL as the postgres user: run it as root")

    folder = Path(tempfile.mkdtemp(prefix="driftwatch-chaos-"))
    folder.chmod(0o755)  # the postgres user must reach its data folder inside
    stack = Stack(folder, args.users)
    edits = EditStream(stack)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    failed = False
    try:
        log(f"setting up in {folder}")
        stack.start_postgres()
        stack.start_redis()
        stack.start_cluster()
        log(f"control plane up ({', '.join(sorted(stack.components))}); Driftwatch next")
        stack.start_driftwatch()
        shared = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DRIFTWATCH_CELERY_QUEUE")
        os.environ.update({key: stack.env[key] for key in shared})
        import django

        django.setup()
        from drift.models import Cluster

        Cluster.objects.filter(name=CLUSTER).update(
            snapshot_interval_seconds=SNAPSHOT_INTERVAL, rollout_batch_size=2, api_requests_per_second=0
        )
        seed(stack)
        chaos = Chaos(stack, edits)
        chaos.record_generations()
        load_users(stack, chaos, args.users)
        threading.Thread(target=edits.run, name="edit-stream", daemon=True).start()
        log(f"warming up: {args.users} users, an edit every {edits.every} s")
        wait_until("a first snapshot", lambda: chaos.last_snapshot_ok_after(0), 120)
        wait_until("the watcher", lambda: chaos.newest_edit_stored_after(time.time() - 30), 60)
        time.sleep(10)
        if args.only:
            original = chaos.run

            def only(fault: str, inject: Callable[[Row], None], recovered: Callable[[Row], bool]) -> Row:
                return original(fault, inject, recovered) if args.only in fault else Row(fault)

            chaos.run = only  # type: ignore[method-assign]
        chaos.all_faults()
        edits.stop.set()
        time.sleep(10)
        final = Row("after all faults (every edit)", started=time.time(), back=time.time())
        chaos.check(final, before=time.time())
        final.recovered = final.ended = time.time()
        chaos.rows.append(final)
        stack.children["load"].stop()
        rows = [row for row in chaos.rows if row.started]
        count_requests(rows, read_requests(folder / "requests.log"))
        print()
        print(table(rows))
        print(f"\nedits answered {len(edits.answered)}, edits refused or unanswered {edits.failed}; "
              f"total {time.monotonic() - started:.0f} s")  # fmt: skip
        for row in rows:
            for entry in row.missing + row.duplicates + row.notes:
                print(f"  {row.fault}: {entry}")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps([{**row.__dict__, "down": row.down, "recover": row.recover}
                                            for row in rows], indent=1, default=str))  # fmt: skip
        failed = any(row.missing or row.duplicates for row in rows)
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        log("tearing down")
        stack.teardown()
        if args.keep or failed:
            log(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if failed:
        sys.exit(1)


def load_users(stack: Stack, chaos: Chaos, users: int) -> None:
    """bench/load.py's viewers, logged in beforehand, and Locust running bench/chaos_load.py for the whole run."""
    from load import create_users

    password = secrets.token_urlsafe(16)
    env = {**stack.env, "DRIFTWATCH_LOAD_PASSWORD": password, "DRIFTWATCH_LOAD_USERS": str(users),
           "DRIFTWATCH_CHAOS_REQUEST_LOG": str(stack.folder / "requests.log")}  # fmt: skip
    sessions = create_users(env, users + 1, password)
    env["DRIFTWATCH_LOAD_SESSIONS"] = sessions
    chaos.probe_session = sessions.split(",")[-1]
    stack.children["load"] = Child(
        "load",
        [str(VENV / "locust"), "-f", str(ROOT / "bench" / "chaos_load.py"), "--headless", "-u", str(users), "-r",
         "10", "-t", "60m", "--host", f"http://127.0.0.1:{stack.web_port}", "--only-summary", "--loglevel",
         "WARNING"],
        env, stack.folder / "locust.log",
    ).start()  # fmt: skip


if __name__ == "__main__":
    main()
