"""`scripts/cluster down` leaves nothing of the real node behind: no process, mount, mount namespace,
bridge, cgroup, listening kubelet port or iptables chain.

It takes the cluster away, so it is marked `teardown`, left out of the main run (pyproject's addopts)
and run on its own after it: `make test` runs `pytest -m teardown` last."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.kube_helpers import Kube, deployment
from tests.test_real_node import on_real_node, toolbox

pytestmark = pytest.mark.teardown

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".cluster" / "node"
BRIDGE = "dwreal0"
KUBELET_PORTS = (10350, 10348)
CGROUP_ROOT = "driftwatch-realnode"  # the kubelet's cgroupRoot
# Where a kubelet and containerd write by default: they must write there only inside their private
# mount namespace, so the host never sees these folders.
HOST_PATHS = ("/var/lib/kubelet", "/var/lib/containerd", "/run/containerd", "/var/log/pods", "/var/lib/cni")


def start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, ProcessLookupError):
        return None


def processes_of_the_node() -> dict[int, str | None]:
    """The namespace holder, everything in its mount namespace (containerd, kubelet, shims) and every
    process of our pods' cgroups, each with its start time (a PID reused later is someone else)."""
    holder = int((STATE / "ns.pid").read_text())
    namespace = os.readlink(f"/proc/{holder}/ns/mnt")
    pids = {holder}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "mnt") == namespace:
                    pids.add(int(entry.name))
            except OSError:
                continue
    for procs in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT}/**/cgroup.procs"):
        pids.update(int(line) for line in procs.read_text().split())
    return {pid: start_time(pid) for pid in pids}


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_down_leaves_no_process_mount_bridge_cgroup_or_port(kube_api: k8s.ApiClient):
    # A namespace of its own without the `namespace` fixture: the cluster is gone when the test ends.
    namespace_name = f"t-{uuid.uuid4().hex[:10]}"
    k8s.CoreV1Api(kube_api).create_namespace({"metadata": {"name": namespace_name}})
    kube = Kube(kube_api, namespace_name)
    kube.create_deployment(on_real_node(deployment("doomed", [toolbox()], replicas=2)))
    kube.wait_deployment_ready("doomed")
    before = processes_of_the_node()
    namespace = os.readlink(f"/proc/{int((STATE / 'ns.pid').read_text())}/ns/mnt")
    assert len(before) >= 6, f"expected holder, containerd, kubelet, shims and containers: {before}"
    assert Path(f"/sys/class/net/{BRIDGE}").exists()
    assert list(Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT}/kubepods"))
    assert all(port_open(port) for port in KUBELET_PORTS)
    assert not [path for path in HOST_PATHS if Path(path).exists()], "the node wrote to the host's folders"

    result = subprocess.run([str(ROOT / "scripts" / "cluster"), "down"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    survivors = {pid: started for pid, started in before.items() if started and start_time(pid) == started}
    assert not survivors, f"processes of the real node still running: {survivors}"
    assert not [
        entry.name
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _readlink(entry / "ns" / "mnt") == namespace
    ], "a process is still in the node's mount namespace"
    assert str(ROOT / ".cluster") not in Path("/proc/self/mountinfo").read_text()
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
    assert not [link for link in Path("/sys/class/net").iterdir() if (link / "master").exists()
                and os.path.basename(os.readlink(link / "master")) == BRIDGE]  # fmt: skip
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT}"))
    assert not any(port_open(port) for port in KUBELET_PORTS)
    assert not [path for path in HOST_PATHS if Path(path).exists()]
    for save in ("iptables-save", "iptables-legacy-save"):
        rules = subprocess.run([save], capture_output=True, text=True)
        assert "KUBE-" not in rules.stdout, f"{save} shows a kubelet chain"
    assert not STATE.exists()


def _readlink(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None
