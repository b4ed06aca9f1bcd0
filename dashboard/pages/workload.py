"""The workload page: each pod with its rows, the service-account rows folded away, the rollout history."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.utils import timezone

from dashboard.pages.version_links import LinkedRow, is_service_account_ca, link_versions
from drift import verdicts
from drift.models import Pod, ReloadSetting, Rollout, Workload
from drift.reload_settings import live_app_containers
from drift.schedules import of_cron_job
from drift.verdicts import pod_verdicts
from drift.vocabulary import VERDICT_ORDER, WorkloadKind


@dataclass
class PodRows:
    pod_id: int
    name: str
    verdict: str
    rows: list[LinkedRow]


@dataclass
class WorkloadDetail:
    workload: Workload
    pods: list[PodRows]
    service_account_rows: list[LinkedRow]
    counts: dict[str, int]
    split_sources: list[str]
    rollouts: list[Rollout]
    kubectl_restarts: list[dt.datetime] = field(default_factory=list)  # `kubectl rollout restart`s, newest first
    terminating: list[tuple[str, dt.datetime]] = field(default_factory=list)  # pods being deleted, not counted

    @property
    def service_account_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for judged in self.service_account_rows:
            counts[judged.row.verdict] += 1
        return dict(counts)


def next_run_words(kind: str, schedule: dict, now: dt.datetime | None = None) -> str:
    """A CronJob's next run in words ("" for other kinds), from the schedule the last snapshot listed
    (Workload.schedule); the workload page and the overview's advice say the same."""
    if kind != WorkloadKind.CRON_JOB:
        return ""
    if not schedule:
        return (
            "next run: cannot tell (Driftwatch has not listed this CronJob: the next snapshot reads its schedule, "
            "given the right to list cronjobs)"
        )
    return of_cron_job(schedule, now or timezone.now()).words(timezone.get_current_timezone())


def find_workload(cluster_name: str, namespace: str, kind: str, name: str) -> Workload | None:
    return (
        Workload.objects.select_related("cluster")
        .filter(cluster__name=cluster_name, namespace=namespace, kind=kind, name=name)
        .first()
    )


def workload_detail(workload: Workload, now: dt.datetime | None = None) -> WorkloadDetail:
    rows = verdicts.rows(workload.cluster, workload.namespace, [workload.pk], now)
    linked = link_versions(workload.cluster, workload.namespace, rows)
    worst = pod_verdicts(rows)
    pods: dict[int, PodRows] = {}
    service_account: list[LinkedRow] = []
    for item in linked:
        row = item.row
        if row.pod_id not in pods:
            pods[row.pod_id] = PodRows(row.pod_id, row.pod, worst[(row.cluster, row.namespace, row.pod)], [])
        if is_service_account_ca(row):
            service_account.append(item)
        else:
            pods[row.pod_id].rows.append(item)
    counts: dict[str, int] = dict.fromkeys(VERDICT_ORDER, 0)
    for verdict in worst.values():
        counts[verdict] += 1
    return WorkloadDetail(
        workload=workload,
        pods=sorted(pods.values(), key=lambda p: p.name),
        service_account_rows=service_account,
        counts=counts,
        split_sources=sorted({str(r.source) for r in rows if r.split}),
        rollouts=rollout_history(workload),
        kubectl_restarts=kubectl_restarts(workload),
        terminating=terminating_pods(workload),
    )


def terminating_pods(workload: Workload) -> list[tuple[str, dt.datetime]]:
    """(name, deletion asked at) of the workload's pods being deleted: left out of the verdicts and counts."""
    pods = Pod.objects.filter(workload=workload, deleted_at=None, terminating_since__isnull=False)
    return [(name, since) for name, since in pods.values_list("name", "terminating_since") if since is not None]


@dataclass(frozen=True)
class ReloadInfo:
    """What is known of whether the workload's app re-reads a rewritten config file: the operators' settings
    (who, when), and what its live pods say per container (the driftwatch.io/reload annotation, a reloader
    sidecar, a restart tool such as Reloader)."""

    settings: list[ReloadSetting]
    hints: dict[str, dict[str, str]]  # container -> reload hints (see drift.podspec.reload_hints)
    restart_tools: list[str]  # for the badge: "Reloader (reloader.stakater.com/auto)", ...


def reload_info(workload: Workload) -> ReloadInfo:
    hints: dict[str, dict[str, str]] = {}
    for name, container_hints in live_app_containers(workload).values_list("name", "reload_hints"):
        if container_hints:
            hints.setdefault(name, container_hints)
    tools = sorted({h["restart_tool"] for h in hints.values() if h.get("restart_tool")})
    return ReloadInfo(list(workload.reload_settings.all()), dict(sorted(hints.items())), tools)


def kubectl_restarts(workload: Workload, limit: int = 20) -> list[dt.datetime]:
    """`kubectl rollout restart`s of the workload, newest first, as the pods Driftwatch saw carry them."""
    moments = (
        Pod.objects.filter(workload=workload, restarted_at__isnull=False)
        .order_by("-restarted_at")
        .values_list("restarted_at", flat=True)
        .distinct()[:limit]
    )
    return [moment for moment in moments if moment is not None]


def rollout_history(workload: Workload, limit: int = 20) -> list[Rollout]:
    return list(
        Rollout.objects.filter(
            cluster=workload.cluster, namespace=workload.namespace, kind=workload.kind, name=workload.name
        )[:limit]
    )
