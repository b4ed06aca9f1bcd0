"""What the process runs, on the real node: real nginx (driftwatch.local/nginx:1, scripts/nginx-image) reads
the demo's nginx.conf, a ConfigMap volume, when it starts and never again. After an edit the kubelet puts the
new file in the container while nginx still answers the old version; a second container of the same pod that
watches the folder with inotify picks the new file up by itself. /proc shows which is which (an inotify
watch on the mounted folder's inode); an annotation rollout makes nginx read the new file."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command

from tests.kube_helpers import Kube, wait_until
from tests.test_real_node import VOLUME_REFRESH_LIMIT, find_real_node, kubectl
from tests.test_real_node_seed import cluster  # noqa: F401 (a fixture, used by name)

pytestmark = pytest.mark.cluster

DEMO_NGINX = Path(__file__).resolve().parent.parent / "deploy" / "demo" / "30-nginx-config.yaml"
NGINX_IMAGE = "driftwatch.local/nginx:1"
CONF_DIR = "/etc/nginx"
CONF = f"{CONF_DIR}/nginx.conf"
WATCHER_COPY = "/tmp/watched"  # where watch-config copies what it read
NOBODY = 65534
# The line of the demo's nginx.conf that answers its version; the test edits it.
VERSION_LINE = 'return 200 "{}\\n";'
# One inotify watch as /proc/PID/fdinfo/N shows it: `inotify wd:1 ino:9925f1 sdev:fe00000 mask:...`.
WATCH_LINE = re.compile(r"^(?P<pid>\d+) inotify wd:(?P<wd>\d+) ino:(?P<ino>[0-9a-f]+) sdev:(?P<sdev>[0-9a-f]+) ")
# For each process of the container: every fd that is an inotify instance, and its fdinfo's watch lines.
LIST_WATCHES = r"""
for fd in /proc/[0-9]*/fd/*; do
  [ "$(readlink "$fd" 2>/dev/null)" = anon_inode:inotify ] || continue
  pid=${fd#/proc/}; pid=${pid%%/*}
  while read -r line; do
    case "$line" in "inotify wd:"*) echo "$pid $line" ;; esac
  done <"/proc/$pid/fdinfo/${fd##*/}"
done
"""


@dataclass(frozen=True)
class Watch:
    pid: int
    wd: int
    inode: int
    device: int  # the kernel's encoding: major << 20 | minor


def demo_nginx() -> tuple[dict[str, str], dict[str, Any]]:
    """The demo's nginx-config data and nginx Deployment, as shipped, on one replica."""
    config_map, manifest = yaml.safe_load_all(DEMO_NGINX.read_text())
    manifest["metadata"].pop("namespace")
    manifest["spec"]["replicas"] = 1
    manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 2
    return config_map["data"], manifest


def with_watcher(manifest: dict[str, Any]) -> dict[str, Any]:
    """A second container in nginx's pod: watch-config holds an inotify watch on the same mounted folder and
    copies the files when the kubelet swaps `..data`. It runs as nobody, as many sidecars do."""
    pod = manifest["spec"]["template"]["spec"]
    [nginx] = pod["containers"]
    watcher = {
        "name": "watcher",
        "image": NGINX_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["watch-config", CONF_DIR, WATCHER_COPY],
        "securityContext": {"runAsUser": NOBODY, "runAsGroup": NOBODY},
        "volumeMounts": copy.deepcopy(nginx["volumeMounts"]),
    }
    pod["containers"].append(watcher)
    return manifest


def exec_in(kube: Kube, pod: str, container: str, *command: str) -> str:
    result = kubectl("-n", kube.namespace, "exec", pod, "-c", container, "--", *command)
    assert result.returncode == 0, f"exec {pod} -c {container} -- {' '.join(command)}: {result.stderr}"
    return result.stdout


def nginx_answers(kube: Kube, pod: str) -> str:
    """The version the running nginx serves, asked from inside the pod's network namespace."""
    return exec_in(kube, pod, "nginx", "wget", "-qO-", "http://127.0.0.1/config-version").strip()


def conf_with_version(conf: str, version: str) -> str:
    [old] = re.findall(r'return 200 "[^"]*\\n";', conf)
    return conf.replace(old, VERSION_LINE.format(version))


def edit_and_wait_for_file(kube: Kube, pod: str, conf: str, version: str) -> tuple[str, float]:
    """Edit nginx-config to answer `version` and wait until the kubelet has put the new file in the pod's
    nginx container; returns the new text and the seconds it took."""
    edited = conf_with_version(conf, version)
    started = time.monotonic()
    kube.edit_config_map("nginx-config", {"nginx.conf": edited})
    wait_until(
        lambda: exec_in(kube, pod, "nginx", "cat", CONF) == edited,
        timeout=VOLUME_REFRESH_LIMIT,
        interval=2,
        what="the kubelet to rewrite nginx.conf in the volume",
    )
    return edited, time.monotonic() - started


def inotify_watches(kube: Kube, pod: str, container: str) -> list[Watch]:
    """Every inotify watch held by a process of `container`, read by exec as the container's own user."""
    found = []
    for line in exec_in(kube, pod, container, "sh", "-c", LIST_WATCHES).splitlines():
        match = WATCH_LINE.match(line)
        assert match, f"an fdinfo line of an unknown shape: {line!r}"
        found.append(Watch(int(match["pid"]), int(match["wd"]), int(match["ino"], 16), int(match["sdev"], 16)))
    return found


def folder_identity(kube: Kube, pod: str, container: str, path: str) -> tuple[int, int]:
    """(inode, device in the kernel's encoding) of `path` in the container, comparable with a Watch."""
    inode, device = exec_in(kube, pod, container, "stat", "-c", "%i %d", path).split()
    st_dev = int(device)
    return int(inode), os.major(st_dev) << 20 | os.minor(st_dev)


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    uid: int
    started: int  # clock ticks after boot (/proc/PID/stat field 22)


# /proc/PID/comm, status and stat are readable by anyone; a process that ends while it is read (the exec's
# own `cat`s) leaves a short line, skipped.
LIST_PROCESSES = r"""
for d in /proc/[0-9]*; do
  echo "${d#/proc/} $(cat $d/comm 2>/dev/null) $(sed -n 's/^Uid:\t\([0-9]*\).*/\1/p' $d/status 2>/dev/null)" \
    "$(cut -d' ' -f22 $d/stat 2>/dev/null)"
done
"""


def processes(kube: Kube, pod: str, container: str, name: str) -> list[Process]:
    """The container's processes called `name`, as an exec sees them."""
    found = []
    for line in exec_in(kube, pod, container, "sh", "-c", LIST_PROCESSES).splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[1] == name:
            found.append(Process(int(fields[0]), fields[1], int(fields[2]), int(fields[3])))
    return sorted(found, key=lambda process: process.pid)


def fds_readable(kube: Kube, pod: str, container: str, process: str) -> dict[int, tuple[bool, bool]]:
    """PID of each `process` -> whether an exec as the container's user can read (the target of its fd 0's
    link, its fdinfo 0). Listing /proc/PID/fd is not enough: root lists any process's fd names, but reading a
    link or an fdinfo needs ptrace access (the same uid, or CAP_SYS_PTRACE)."""
    script = (
        f'for d in /proc/[0-9]*; do [ "$(cat $d/comm)" = {process} ] || continue; '
        'readlink "$d/fd/0" >/dev/null 2>&1 && link=yes || link=no; '
        'cat "$d/fdinfo/0" >/dev/null 2>&1 && info=yes || info=no; '
        'echo "${d#/proc/} $link $info"; done'
    )
    answers = exec_in(kube, pod, container, "sh", "-c", script).split()
    return {
        int(pid): (link == "yes", info == "yes")
        for pid, link, info in zip(answers[::3], answers[1::3], answers[2::3], strict=True)
    }


def ready_pod(kube: Kube, app: str, not_named: str = "") -> str:
    def found() -> str | None:
        pods = [pod.metadata.name for pod in kube.ready_pods(app) if pod.metadata.name != not_named]
        return pods[0] if len(pods) == 1 else None

    return wait_until(found, timeout=120, what=f"one ready pod of {app}")


@pytest.fixture
def nginx_pod(kube, kube_api) -> tuple[str, str]:
    """The demo's nginx with a watcher beside it, answering v1; returns (pod name, its nginx.conf)."""
    find_real_node(kube_api)
    data, manifest = demo_nginx()
    kube.config_map("nginx-config", data)
    kube.create_deployment(with_watcher(manifest))
    kube.wait_deployment_ready("nginx")
    pod = ready_pod(kube, "nginx")
    wait_until(lambda: nginx_answers(kube, pod) == "v1", timeout=30, interval=1, what="nginx answering v1")
    return pod, data["nginx.conf"]


def test_nginx_answers_the_old_version_until_rolled_while_the_watcher_reads_the_new_file(kube, nginx_pod):
    pod, conf = nginx_pod
    assert exec_in(kube, pod, "watcher", "cat", f"{WATCHER_COPY}/nginx.conf") == conf

    edited, took = edit_and_wait_for_file(kube, pod, conf, "v2")
    print(f"nginx.conf new in the container {took:.0f} s after the edit")
    assert nginx_answers(kube, pod) == "v1", "nginx read its conf at start and has not read it again"
    wait_until(
        lambda: exec_in(kube, pod, "watcher", "cat", f"{WATCHER_COPY}/nginx.conf") == edited,
        timeout=10,
        interval=1,
        what="the watcher to copy the new nginx.conf",
    )
    reads = [line for line in kubectl("-n", kube.namespace, "logs", pod, "-c", "watcher").stdout.splitlines()]
    assert len([line for line in reads if line.startswith("watch-config: read /etc/nginx")]) == 2, reads

    kube.patch_template_annotation("nginx", "driftwatch.io/config-hash", "v2")
    rolled = ready_pod(kube, "nginx", not_named=pod)
    assert nginx_answers(kube, rolled) == "v2", "a new pod's nginx reads the conf as it is now"


def test_proc_shows_the_watchers_inotify_watch_on_the_mounted_folder_and_none_in_nginx(kube, nginx_pod):
    pod, conf = nginx_pod
    folder = folder_identity(kube, pod, "watcher", CONF_DIR)
    assert folder == folder_identity(kube, pod, "nginx", CONF_DIR), "both containers mount the same volume"
    [watch] = inotify_watches(kube, pod, "watcher")
    assert (watch.inode, watch.device) == folder
    assert inotify_watches(kube, pod, "nginx") == []

    # The watch is on the folder the volume is mounted at, which the kubelet never replaces: still there,
    # on the same inode, after it swapped `..data`.
    edit_and_wait_for_file(kube, pod, conf, "v2")
    assert [(w.inode, w.device) for w in inotify_watches(kube, pod, "watcher")] == [folder]

    # A reload (SIGHUP, what a hot-reloading workload does) makes nginx read the new file: its master keeps
    # its PID and start time, its worker is a new process.
    master, worker = processes(kube, pod, "nginx", "nginx")
    assert nginx_answers(kube, pod) == "v1"
    exec_in(kube, pod, "nginx", "nginx", "-s", "reload")
    wait_until(lambda: nginx_answers(kube, pod) == "v2", timeout=10, interval=1, what="nginx reloaded")
    wait_until(lambda: len(processes(kube, pod, "nginx", "nginx")) == 2, timeout=10, what="the old worker gone")
    master_after, worker_after = processes(kube, pod, "nginx", "nginx")
    assert master_after == master
    assert worker_after.pid != worker.pid and worker_after.started >= worker.started


def test_who_runs_what_and_whose_fds_an_exec_can_read(kube, nginx_pod):
    """The facts a probe by exec meets. nginx's master (PID 1) runs as root, its one worker as nobody (the
    demo's conf names no `user`); an exec in that container runs as root without CAP_SYS_PTRACE, so it reads
    the master's fd links and fdinfo but not the worker's (Permission denied: unknown, not "no watch"). The
    watcher runs as nobody, and so does an exec in its container: it reads its own processes' fds."""
    pod, _ = nginx_pod
    master, worker = processes(kube, pod, "nginx", "nginx")
    assert (master.pid, master.uid, worker.uid) == (1, 0, NOBODY)
    readable = fds_readable(kube, pod, "nginx", "nginx")
    assert readable.pop(1) == (True, True), "the master, root like the exec"
    assert list(readable.values()) == [(False, False)], "the worker, nobody: root's exec lacks CAP_SYS_PTRACE"

    assert [p.uid for p in processes(kube, pod, "watcher", "inotifywait")] == [NOBODY]
    assert list(fds_readable(kube, pod, "watcher", "inotifywait").values()) == [(True, True)]


def nginx_rows(namespace: str) -> dict[str, dict[str, Any]]:
    """Container -> Driftwatch's row for its nginx-config volume, as `driftreport --json` prints it."""
    out = io.StringIO()
    call_command("driftreport", "--json", "--cluster", "local", "--namespace", namespace, stdout=out)
    return {
        row["container"]: row
        for row in json.loads(out.getvalue())
        if row["source"]["name"] == "nginx-config" and row["workload"]["name"] == "nginx"
    }


def snapshot() -> str:
    out = io.StringIO()
    call_command("snapshot", "--cluster", "local", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_driftwatch_never_calls_nginx_fresh_on_a_new_file_and_calls_the_watcher_fresh(kube, nginx_pod, cluster):  # noqa: F811
    """The verdict knows whether the process re-read the file: nginx, which read its conf at start, is new on
    disk only (never fresh) until the rollout; the watcher beside it, seen holding an inotify watch on the
    volume, is fresh as soon as its file is new."""
    pod, conf = nginx_pod
    assert snapshot().startswith("local: succeeded")
    before = nginx_rows(kube.namespace)
    assert {name: (row["verdict"], row["evidence"]) for name, row in before.items()} == {
        "nginx": ("fresh", "observed"),
        "watcher": ("fresh", "observed"),
    }

    edit_and_wait_for_file(kube, pod, conf, "v2")
    assert snapshot().startswith("local: succeeded")
    assert nginx_answers(kube, pod) == "v1"
    after = nginx_rows(kube.namespace)
    assert (after["nginx"]["verdict"], after["nginx"]["evidence"]) == ("unreloaded", "observed"), after["nginx"]
    assert "file new on disk since" in after["nginx"]["reason"]
    assert "not known to reload" in after["nginx"]["reason"]
    assert after["nginx"]["stale_since"] is not None
    assert (after["watcher"]["verdict"], after["watcher"]["evidence"]) == ("fresh", "observed"), after["watcher"]
    assert "watches the volume (inotify)" in after["watcher"]["reason"]

    out = io.StringIO()
    call_command(
        "rollout", "deployment/nginx", "-n", kube.namespace, "--cluster", "local", "--actor", "test", "--wait",
        "--timeout", "180", stdout=out,
    )  # fmt: skip
    rolled = ready_pod(kube, "nginx", not_named=pod)
    assert nginx_answers(kube, rolled) == "v2", "the new pod's nginx read the conf as it is now"

    def fresh_after_rollout() -> bool:
        snapshot()
        rows = nginx_rows(kube.namespace)
        return bool(rows) and all(row["pod"] == rolled and row["verdict"] == "fresh" for row in rows.values())

    wait_until(fresh_after_rollout, timeout=90, interval=3, what="Driftwatch to see the new pod fresh")
