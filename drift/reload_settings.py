"""An operator's word on whether a workload's app re-reads a rewritten config file (ReloadSetting): set, changed or
cleared in one place, audited in the same transaction, and the workload's verdicts judged again at once."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from drift import audit, verdicts
from drift.models import AuditEvent, ContainerInstance, ReloadSetting, Workload
from drift.vocabulary import Reload

CLEAR = "clear"


def live_app_containers(workload: Workload) -> QuerySet[ContainerInstance]:
    """The running app containers (not init containers) of the workload's live pods."""
    return ContainerInstance.objects.filter(pod__workload=workload, pod__deleted_at=None, ended_at=None, init=False)


def container_names(workload: Workload) -> list[str]:
    """The app containers of the workload's live pods: what a per-container setting may name."""
    return sorted(set(live_app_containers(workload).values_list("name", flat=True)))


def set_reload(workload: Workload, container: str, reload: str, actor: str) -> str:
    """Set (hot or restart) or clear (CLEAR) the setting for one container ("" for every container); returns
    what was done, as a sentence. ``container`` must be "" or one of ``container_names`` (the caller's form
    checks it against them)."""
    if reload not in (Reload.HOT, Reload.RESTART, CLEAR):
        raise ValueError(f"not a reload setting: {reload!r}")
    who = f"container {container}" if container else "every container"
    with transaction.atomic():
        current = ReloadSetting.objects.select_for_update().filter(workload=workload, container=container).first()
        before = current.reload if current else ""
        if reload == CLEAR:
            said = f"{actor} cleared the reload setting of {who} of {workload.kind}/{workload.name}"
        else:
            said = f"{actor} declared {who} of {workload.kind}/{workload.name} {reload}"
        if (current is None and reload == CLEAR) or before == reload:
            return f"Nothing changed: {who} is already {'not set' if reload == CLEAR else reload}."
        audit.record(
            actor, AuditEvent.Action.RELOAD_SET, said, cluster_name=workload.cluster.name,
            namespace=workload.namespace, object_kind=workload.kind, object_name=workload.name,
            detail={"container": container, "before": before, "after": "" if reload == CLEAR else reload},
        )  # fmt: skip
        if reload == CLEAR:
            ReloadSetting.objects.filter(workload=workload, container=container).delete()
        else:
            ReloadSetting.objects.update_or_create(
                workload=workload,
                container=container,
                defaults={"reload": reload, "set_by": actor, "set_at": timezone.now()},
            )
    verdicts.workloads_changed(workload.cluster, [workload.pk])
    return said + "."
