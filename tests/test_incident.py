"""An incident, scripted on the real stack (real PostgreSQL, the real local control plane, real containers on its
real node): a Deployment of three pods reads `mode` of ConfigMap app-config as an env var, and its container
exits when `mode` is bad. A good edit, a partial rollout (Driftwatch evicts one stale pod, then the operator
cancels it: the replacement reads the new value), a bad edit, a pod replaced after it that crashes on it (the kubelet restarts it), and a way back
through the restore (refused when someone changed the ConfigMap after the preview, done and audited
otherwise, with a rollout of the Deployment).

Checked: point in time at three moments names the right version per pod, by UID; the blast radius of the bad
version names the crashed pod, the good one's the partial rollout; the restore's refusal and its audit entry. The timeline's check (each step
once, in order, with its author) is for after the timeline has landed: the steps are collected by
``IncidentSteps`` below for it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from django.utils import timezone

from drift.blast import blast_radius
from drift.history import history
from drift.models import AuditEvent, Cluster
from drift.restore import RestoreRefused, preview, restore
from drift.rollout import Target, cancel_rollout, request_eviction
from drift.snapshot import snapshot
from drift.timeline import Filters, Scope, timeline
from drift.verdicts.read_at import point_in_time
from drift.vocabulary import SourceKind, TimelineKind, Trouble
from tests.kube_helpers import Kube, deployment, wait_until
from tests.test_real_node import TOOLBOX, find_real_node, on_real_node

pytestmark = [pytest.mark.cluster, pytest.mark.django_db, pytest.mark.usefixtures("private_celery_queue")]

APP = "payments"
# Exits at once with a bad `mode` (as an application refusing its config would); otherwise runs until SIGTERM.
CHECKS_ITS_CONFIG = [
    "sh",
    "-c",
    'if [ "$MODE" = bad ]; then echo "refusing mode=$MODE" >&2; exit 3; fi; echo "running mode=$MODE"; '
    "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done",
]


@dataclass
class IncidentSteps:
    """Each step of the incident as it happened: what, when, by whom (the field manager the API server recorded,
    or Driftwatch's actor). What the timeline must list, once each, in this order."""

    steps: list[tuple[str, datetime, str]] = field(default_factory=list)

    def add(self, what: str, by: str) -> None:
        self.steps.append((what, timezone.now(), by))


def later_second() -> None:
    """The API's times are whole seconds: the next step lands in a later second than the last moment taken."""
    time.sleep(1.1)


def edit(kube: Kube, data: dict[str, str], manager: str) -> None:
    kube.core.patch_namespaced_config_map("app-config", kube.namespace, {"data": data}, field_manager=manager)


def uids(kube: Kube) -> set[str]:
    return {pod.metadata.uid for pod in kube.pods(APP)}


def replace_pod(kube: Kube, uid: str) -> str:
    """Delete one pod (as an operator's partial rollout would) and return the UID of the pod that replaces it."""
    [pod] = [pod for pod in kube.pods(APP) if pod.metadata.uid == uid]
    before = uids(kube)
    kube.core.delete_namespaced_pod(pod.metadata.name, kube.namespace)

    def replacement() -> str | None:
        now = uids(kube)
        new = now - before
        return next(iter(new)) if uid not in now and len(new) == 1 else None

    return wait_until(replacement, timeout=90, what=f"a pod replacing {pod.metadata.name}")


def restarts(kube: Kube, uid: str) -> int:
    [pod] = [pod for pod in kube.pods(APP) if pod.metadata.uid == uid]
    statuses = pod.status.container_statuses or []
    return statuses[0].restart_count if statuses else 0


def versions_by_uid(cluster: Cluster, at: datetime) -> dict[str, int | None]:
    answer = point_in_time(cluster, at)
    assert answer.known, answer.coverage.reason
    return {
        row.pod_uid: (row.running.number if row.running else None)
        for row in answer.rows
        if row.row.source.name == "app-config"
    }


def test_an_incident_edit_partial_rollout_crash_and_restore(kubeconfig, kube, kube_api, namespace):
    find_real_node(kube_api)
    cluster = Cluster.objects.create(name="local", kubeconfig_path=str(kubeconfig), namespaces=[namespace])
    steps = IncidentSteps()
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "app-config"}, "data": {"mode": "good-1"}}, field_manager="deploy-bot"
    )
    container = {
        "name": "app",
        "image": TOOLBOX,
        "imagePullPolicy": "Never",
        "command": CHECKS_ITS_CONFIG,
        "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "mode"}}}],
    }
    kube.create_deployment(on_real_node(deployment(APP, [container], replicas=3)))
    kube.wait_deployment_ready(APP)
    first = uids(kube)
    assert snapshot(cluster).status == "succeeded"
    later_second()
    at_start = timezone.now()

    # 1. A good edit, and a partial rollout: one pod replaced reads it, two keep the first value.
    later_second()
    edit(kube, {"mode": "good-2"}, "deploy-bot")
    steps.add("edit #2 (mode=good-2)", "deploy-bot")
    assert snapshot(cluster).status == "succeeded"
    later_second()
    # Driftwatch's "restart the stale pods only", one at a time: the first is evicted, then the operator cancels
    # it (no follower runs here to send the next), which leaves a partial rollout.
    rollout, plan = request_eviction(cluster, Target("Deployment", namespace, APP), "olga", at_once=1)
    assert rollout.status == "in_progress", plan.message
    [evicted] = rollout.evicted
    on_second = wait_until(
        lambda: next(iter(uids(kube) - first), None), timeout=90, what="the evicted pod's replacement"
    )
    assert cancel_rollout(rollout, "olga")
    steps.add("eviction of one pod, then cancelled (partial rollout)", "olga")
    kube.wait_deployment_ready(APP)
    # The Deployment's status may still count the evicted pod: wait for the replacement itself to be Ready, or
    # the snapshot may record it before its container started (and at T it would rightly be "not known").
    wait_until(lambda: on_second in {pod.metadata.uid for pod in kube.ready_pods(APP)}, what="the replacement Ready")
    assert uids(kube) == first - {evicted["uid"]} | {on_second}
    kept, untouched = sorted(first - {evicted["uid"]})
    assert snapshot(cluster).status == "succeeded"
    later_second()
    after_partial = timezone.now()

    # 2. The bad edit; the next pod replaced after it starts on it and crashes (the kubelet restarts it).
    later_second()
    edit(kube, {"mode": "bad"}, "kubectl-edit")
    steps.add("edit #3 (mode=bad)", "kubectl-edit")
    assert snapshot(cluster).status == "succeeded"
    later_second()
    crashing = replace_pod(kube, kept)
    steps.add("pod deleted", "test")
    # A snapshot at each restart sees each run of the crashing container.
    for count in (1, 2):
        wait_until(lambda: restarts(kube, crashing) >= count, timeout=120, what=f"restart {count} of the bad pod")  # noqa: B023
        assert snapshot(cluster).status == "succeeded"
    steps.add("pod crashed on #3", "kubelet")
    later_second()
    after_crash = timezone.now()

    # Point in time at three moments: the right version per pod, by UID.
    assert versions_by_uid(cluster, at_start) == {uid: 1 for uid in first}
    assert versions_by_uid(cluster, after_partial) == {on_second: 2, kept: 1, untouched: 1}
    assert versions_by_uid(cluster, after_crash) == {on_second: 2, crashing: 3, untouched: 1}

    # The blast radius of the bad version names the crashed pod; the good one's names the pod that took it up.
    bad = blast_radius(cluster, namespace, SourceKind.CONFIG_MAP, "app-config", 3)
    assert bad is not None
    assert crashing in {pod.pod_uid for pod in bad.pods}
    assert [pod.pod_uid for pod in bad.troubled] == [crashing]
    troubles = [(seen.what, seen.reason) for seen in bad.troubled[0].troubles]
    assert (Trouble.CRASHED, "Error, exit code 3") in troubles, troubles
    good = blast_radius(cluster, namespace, SourceKind.CONFIG_MAP, "app-config", 2)
    assert good is not None and {pod.pod_uid for pod in good.pods} == {on_second} and good.troubled == []
    # The partial rollout came after the good edit: the good version's blast radius has it, with its operator.
    assert [(each.by, each.rollout.pk) for each in good.rollouts] == [("olga", rollout.pk)]
    assert bad.rollouts == []

    # 3. The way back: refused when someone changed the ConfigMap after the preview; then done, and audited.
    versions = history(cluster, namespace, SourceKind.CONFIG_MAP, "app-config")
    assert [entry.version.client for entry in versions] == ["deploy-bot", "deploy-bot", "kubectl-edit"]
    shown = preview(versions[1].version)
    edit(kube, {"note": "looking into it"}, "kubectl-annotate")
    steps.add("edit (note added)", "kubectl-annotate")
    assert snapshot(cluster).status == "succeeded"  # no watcher runs here: a snapshot records the edit
    with pytest.raises(RestoreRefused, match="changed after the preview"):
        restore(versions[1].version, "alice", shown.live_resource_version)
    refused = AuditEvent.objects.filter(action=AuditEvent.Action.RESTORE_REFUSED, object_name="app-config").get()
    assert refused.actor == "alice"
    live = kube.core.read_namespaced_config_map("app-config", namespace)
    assert live.data == {"mode": "bad", "note": "looking into it"}

    shown = preview(versions[1].version)
    done = restore(versions[1].version, "alice", shown.live_resource_version, roll_out=True)
    steps.add("restore to #2, with a rollout", "alice")
    live = kube.core.read_namespaced_config_map("app-config", namespace)
    assert live.data == {"mode": "good-2"} and live.metadata.resource_version == done.resource_version
    restored = AuditEvent.objects.filter(action=AuditEvent.Action.RESTORED, object_name="app-config").get()
    assert restored.actor == "alice" and restored.detail["new_resource_version"] == done.resource_version
    assert [(rollout.kind, rollout.name) for rollout in done.rollouts] == [("Deployment", APP)]
    assert done.rollouts[0].status == "in_progress", done.rollouts[0].message
    assert snapshot(cluster).status == "succeeded"
    back = history(cluster, namespace, SourceKind.CONFIG_MAP, "app-config")[-1]
    after_restore = blast_radius(cluster, namespace, SourceKind.CONFIG_MAP, "app-config", back.number)
    assert after_restore is not None
    assert [(str(each.workload), each.by) for each in after_restore.rollouts] == [(f"Deployment/{APP}", "alice")]

    # The namespace's timeline lists each step once, in order, with its author.
    entries = timeline(Scope(cluster, namespace), Filters(start=at_start, end=timezone.now()), page_size=500).entries
    changes = [(e.kind, e.detail.get("version") or e.detail.get("action") or "", e.actor) for e in entries
               if e.kind in (TimelineKind.VERSION, TimelineKind.ROLLOUT)]  # fmt: skip
    said = [(kind, author) for kind, _, author in changes]
    assert [kind for kind, _ in said] == ["version", "rollout", "version", "version", "version", "rollout"], changes
    authors = [author for _, author in said]
    # Each step's author, as steps recorded them (the restore is a version and its rollout, both asked by alice).
    by_step = {what: by for what, _, by in steps.steps}
    expected = [by_step["edit #2 (mode=good-2)"], by_step["eviction of one pod, then cancelled (partial rollout)"],
                by_step["edit #3 (mode=bad)"], by_step["edit (note added)"],
                by_step["restore to #2, with a rollout"], by_step["restore to #2, with a rollout"]]  # fmt: skip
    for (kind, version, author), by in zip(changes, expected, strict=True):
        assert by in author, (kind, version, author, by)
    # The restore's version is Driftwatch's own write: its author is the person who asked, from its audit log.
    assert authors[4].startswith("alice"), authors
    # Between the bad edit and the next one: the deleted pod's end and the crashed pod's runs, each once. (With no
    # watcher running, a pod's end is when a snapshot first missed it, so it may come after the crashes.)
    bad_at = next(e.at for e in entries if e.kind == TimelineKind.VERSION and e.actor == authors[2])
    note_at = next(e.at for e in entries if e.kind == TimelineKind.VERSION and e.actor == authors[3])
    [gone] = [e for e in entries if e.kind == TimelineKind.POD_END and e.pod_uid == kept]
    crashes = [e for e in entries if e.kind == TimelineKind.TERMINATION and e.pod_uid == crashing]
    assert crashes and all("Error (exit code 3)" in e.summary for e in crashes), crashes
    assert len({e.key for e in crashes}) == len(crashes) >= 2
    assert bad_at <= gone.at <= note_at
    assert bad_at <= crashes[0].at <= crashes[-1].at <= note_at
    assert [e.at for e in entries] == sorted(e.at for e in entries)
