"""Observed volumes: Driftwatch reads mounted files through exec, the way it does on real nodes.

A kwok node has no container filesystem; its exec runs the command on this host. So the pod mounts its
ConfigMap at a path under this test's temporary folder, and the test plays the kubelet's atomic writer
there (files in a timestamped folder, `..data` pointing at it, keys linked through `..data`), writing
late or never. The cluster is told to probe files even on simulated nodes (`file_probes=always`).

No verdict here depends on how fast the machine is: the propagation window is far longer than a snapshot may
run (twice the snapshot task's hard time limit), so a volume read right after the change is inside it however
loaded the machine; what holds once the window has passed is judged at an explicit moment beyond it."""

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from drift.clusters import register_cluster
from drift.models import Cluster, Observation
from drift.snapshot import snapshot
from drift.tasks import SNAPSHOT_TIME_LIMIT
from drift.verdicts import drift_rows
from tests.kube_helpers import deployment
from tests.test_probes import INOTIFY_WATCHER, started

pytestmark = [pytest.mark.cluster, pytest.mark.django_db]
WINDOW_SECONDS = 2 * SNAPSHOT_TIME_LIMIT
NGINX_CONF = 'server {\n  if ($cookie_special ~* "dogfood") { set $xheader "/host/world => /srv/world-v2;"; }\n}\n'


def kubelet_writes(directory: Path, data: dict[str, str]) -> None:
    """The kubelet's atomic writer: a new timestamped folder, then one rename of the ..data link."""
    stamp = directory / f"..{datetime.now(UTC):%Y_%m_%d_%H_%M_%S}.{uuid.uuid4().int % 10**9}"
    stamp.mkdir(parents=True)
    for key, value in data.items():
        (stamp / key).write_text(value)
    staging = directory / "..data_tmp"
    staging.symlink_to(stamp.name)
    os.replace(staging, directory / "..data")
    for key in data:
        link = directory / key
        if not link.is_symlink():
            link.symlink_to(f"..data/{key}")


@pytest.fixture
def cluster(kubeconfig):
    registered, _ = register_cluster("local", kubeconfig_path=str(kubeconfig))
    Cluster.objects.filter(pk=registered.pk).update(
        propagation_window_seconds=WINDOW_SECONDS, file_probes=Cluster.FileProbes.ALWAYS
    )
    registered.refresh_from_db()
    return registered


def row(cluster, namespace, mode, now=None):
    """The one row of this mode, judged now (or at ``now``)."""
    [found] = [
        r
        for r in drift_rows(cluster, namespace=namespace, now=now)
        if r.mode == mode and r.source.name != "kube-root-ca.crt"
    ]
    return found


def beyond_the_window() -> datetime:
    """A moment after the window of any change made so far has ended."""
    return timezone.now() + timedelta(seconds=WINDOW_SECONDS + 1)


def test_a_volume_is_observed_propagating_then_fresh_then_stale(cluster, kube, tmp_path):
    mount = tmp_path / "etc-config"
    kube.config_map("special-config", {"log_level": "INFO"})
    kubelet_writes(mount, {"log_level": "INFO"})
    container = {"name": "app", "image": "nginx:1.27", "volumeMounts": [{"name": "c", "mountPath": str(mount)}]}
    kube.create_deployment(
        deployment("volume-demo", [container], [{"name": "c", "configMap": {"name": "special-config"}}])
    )
    kube.wait_deployment_ready("volume-demo")
    [pod] = kube.ready_pods("volume-demo")
    kube.wait_exec_ready(pod.metadata.name)

    snapshot(cluster)
    first = row(cluster, kube.namespace, "volume")
    assert (first.verdict, first.evidence) == ("fresh", "observed")
    observation = Observation.objects.filter(consumption_id=first.consumption_id).latest()
    assert observation.ok and set(observation.key_hashes) == {"log_level"}
    assert observation.volume_written_at is not None, "the ..data folder's timestamp was read"

    kube.edit_config_map("special-config", {"log_level": "DEBUG"})
    snapshot(cluster)
    behind = row(cluster, kube.namespace, "volume")
    assert (behind.verdict, behind.evidence) == ("propagating", "observed"), behind.reason
    assert behind.running_version == first.current_version != behind.current_version, "read the old content"

    kubelet_writes(mount, {"log_level": "DEBUG"})
    snapshot(cluster)
    # The file is new on disk, but nothing says the app re-read it (nginx reads its files at start).
    on_disk = row(cluster, kube.namespace, "volume")
    assert (on_disk.verdict, on_disk.evidence) == ("unreloaded", "observed"), on_disk.reason
    assert on_disk.running_version is None and on_disk.stale_since is not None
    assert "not known to reload" in on_disk.reason

    # With a process watching the folder (kwok runs exec on this host, so the probe reads this host's /proc),
    # the next new file is fresh, observed.
    kube.edit_config_map("special-config", {"log_level": "INFO"})
    snapshot(cluster)
    watcher = started(INOTIFY_WATCHER, str(mount))
    try:
        kubelet_writes(mount, {"log_level": "INFO"})
        snapshot(cluster)
    finally:
        watcher.kill()
    caught_up = row(cluster, kube.namespace, "volume")
    assert (caught_up.verdict, caught_up.evidence) == ("fresh", "observed"), caught_up.reason
    assert "watches the volume (inotify)" in caught_up.reason
    assert caught_up.running_version == caught_up.current_version

    kube.edit_config_map("special-config", {"log_level": "WARN"})
    snapshot(cluster)  # the kubelet never writes this time
    waiting = row(cluster, kube.namespace, "volume")
    assert (waiting.verdict, waiting.evidence) == ("propagating", "observed"), waiting.reason
    stuck = row(cluster, kube.namespace, "volume", now=beyond_the_window())
    assert (stuck.verdict, stuck.evidence) == ("stale", "observed"), stuck.reason
    assert stuck.running_version == caught_up.current_version
    assert stuck.stale_since is not None and stuck.stale_since <= timezone.now()


def test_a_sub_path_file_is_observed_and_stays_stale(cluster, kube, tmp_path):
    target = tmp_path / "nginx" / "nginx.conf"
    target.parent.mkdir()
    target.write_text(NGINX_CONF)  # a subPath mount is a plain file taken once, at start
    kube.config_map("nginx-config", {"nginx.conf": NGINX_CONF})
    container = {
        "name": "nginx",
        "image": "nginx:1.27",
        "volumeMounts": [{"name": "c", "mountPath": str(target), "subPath": "nginx.conf"}],
    }
    kube.create_deployment(deployment("nginx", [container], [{"name": "c", "configMap": {"name": "nginx-config"}}]))
    kube.wait_deployment_ready("nginx")
    [pod] = kube.ready_pods("nginx")
    kube.wait_exec_ready(pod.metadata.name)

    snapshot(cluster)
    taken = row(cluster, kube.namespace, "subPath")
    assert (taken.verdict, taken.evidence) == ("fresh", "observed")

    kube.edit_config_map("nginx-config", {"nginx.conf": NGINX_CONF.replace("dogfood", "beta")})
    snapshot(cluster)
    stale = row(cluster, kube.namespace, "subPath")
    assert (stale.verdict, stale.evidence) == ("stale", "observed"), "a subPath file is never refreshed"
    assert stale.running_version == taken.current_version != stale.current_version


def test_content_matching_no_known_version_is_reported_as_such(cluster, kube, tmp_path):
    mount = tmp_path / "etc-config"
    kube.config_map("special-config", {"log_level": "INFO"})
    kubelet_writes(mount, {"log_level": "TAMPERED"})
    container = {"name": "app", "image": "nginx:1.27", "volumeMounts": [{"name": "c", "mountPath": str(mount)}]}
    kube.create_deployment(deployment("odd", [container], [{"name": "c", "configMap": {"name": "special-config"}}]))
    kube.wait_deployment_ready("odd")
    [pod] = kube.ready_pods("odd")
    kube.wait_exec_ready(pod.metadata.name)

    snapshot(cluster)
    odd = row(cluster, kube.namespace, "volume")
    assert (odd.verdict, odd.evidence) == ("propagating", "observed")
    assert odd.running_version is None
    assert "no version" in odd.reason
    later = row(cluster, kube.namespace, "volume", now=beyond_the_window())
    assert (later.verdict, later.evidence, later.running_version) == ("stale", "observed", None)
