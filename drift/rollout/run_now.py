"""Run now: create a Job from a CronJob's `spec.jobTemplate`, so that its pods read the current configuration
without waiting for the next scheduled run; what `kubectl create job --from=cronjob/NAME` and Argo CD's
`create-job` action do.

The Job is named NAME-manual-SUFFIX, annotated `cronjob.kubernetes.io/instantiate: manual` (as kubectl marks it)
and owned by the CronJob (an ownerReference with controller: true, so the CronJob's history limits and the
garbage collector treat it as one of its own, and Driftwatch files its pods under the CronJob). No
`blockOwnerDeletion`: that would need the right to update the CronJob's finalizers.

1. `plan_run_now` (read only): GET the CronJob, build the Job, ask the API server for a dry run of its creation.
2. `run_now`: plan again, write the audit entry (`job.run_requested`) BEFORE the API call, POST the Job with
   `fieldManager=driftwatch`, then record the outcome (`job.created` or `job.run_refused`).
Authorisation is the caller's, on the CronJob's own Workload row (dashboard.access.require_rollout_permission)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from drift import audit, kube
from drift.models import AuditEvent, Cluster
from drift.rollout.kinds import RUNNABLE_KINDS, Target, kinds_text
from drift.rollout.plan import client_for, forbidden_text
from drift.rollout.template import referenced_sources
from drift.rollout.windows import closed_reason

INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
# A Job's name becomes its pods' job-name label, whose values Kubernetes caps at 63 characters.
JOB_NAME_MAX = 63
# The alphabet Kubernetes' generateName draws from (no vowels, no look-alikes).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class RunNow:
    """What Run now would do or did. `outcome`: ready (planned), created, dry_run or refused."""

    READY = "ready"
    CREATED = "created"
    DRY_RUN = "dry_run"
    REFUSED = "refused"

    target: Target
    outcome: str
    message: str
    job: str = ""
    sources: tuple[tuple[str, str], ...] = ()
    permission: str = ""
    body: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ready(self) -> bool:
        return self.outcome == self.READY

    @property
    def refused(self) -> bool:
        return self.outcome == self.REFUSED


def job_name(cron_job: str, suffix: str) -> str:
    base = cron_job[: JOB_NAME_MAX - len("-manual-") - len(suffix)].rstrip("-.")
    return f"{base}-manual-{suffix}"


def new_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def job_from_cron_job(cron_job: dict[str, Any], suffix: str) -> dict[str, Any]:
    """Pure: the Job `kubectl create job --from=cronjob/NAME` would create, named NAME-manual-SUFFIX."""
    metadata = cron_job.get("metadata") or {}
    template = (cron_job.get("spec") or {}).get("jobTemplate") or {}
    template_metadata = template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(metadata.get("name", ""), suffix),
            "namespace": metadata.get("namespace", ""),
            "labels": dict(template_metadata.get("labels") or {}),
            "annotations": {**(template_metadata.get("annotations") or {}), INSTANTIATE_ANNOTATION: "manual"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": metadata.get("name", ""),
                    "uid": metadata.get("uid", ""),
                    "controller": True,
                }
            ],
        },
        "spec": template.get("spec") or {},
    }


def jobs_path(namespace: str) -> str:
    return kube.collection_path("batch/v1", "jobs", namespace)


def create_jobs_permission(namespace: str) -> str:
    return kube.workload_permission("batch/v1", "jobs", "create", namespace)


def plan_run_now(cluster: Cluster, target: Target, client: kube.KubeClient | None = None) -> RunNow:
    """Read the CronJob, build its Job, and ask the API server for a dry run of creating it. Writes nothing."""
    if target.kind not in RUNNABLE_KINDS:
        return _refusal(target, f"Driftwatch runs {kinds_text(RUNNABLE_KINDS)} now; {target} is none of them.")
    if cluster.read_only:
        return _refusal(target, f"Cluster {cluster.name} is read-only: Driftwatch may not create Jobs there.")
    closed = closed_reason(cluster, target.namespace)
    if closed:
        return _refusal(target, closed)
    try:
        with client_for(cluster, client) as api:
            cron_job = api.get(target.path(), what=target.permission("get"))
            body = job_from_cron_job(cron_job, new_suffix())
            sources = tuple(referenced_sources(target.rules.pod_template(cron_job)))
            api.create(jobs_path(target.namespace), body, what=create_jobs_permission(target.namespace), dry_run=True)
    except kube.KubeError as error:
        return _refusal(target, _refusal_text(cluster, target, error), getattr(error, "permission", "") or "")
    name = body["metadata"]["name"]
    suspended = " (the CronJob is suspended: Run now starts a Job all the same)" if _suspended(cron_job) else ""
    return RunNow(
        target, RunNow.READY,
        f"A Job ({target.name}-manual-…) will be created from {target.kind}/{target.name}'s jobTemplate: its pods "
        f"read the current configuration.{suspended}",
        job=name, sources=sources, body=body,
    )  # fmt: skip


def run_now(
    cluster: Cluster, target: Target, actor: str, *, dry_run: bool = False, client: kube.KubeClient | None = None
) -> RunNow:
    """Plan again (the confirmation may be old), audit the request, create the Job, audit the outcome."""
    where = {"cluster_name": cluster.name, "namespace": target.namespace, "object_kind": target.kind,
             "object_name": target.name}  # fmt: skip
    try:
        with client_for(cluster, client) as api:
            plan = plan_run_now(cluster, target, api)
            if not plan.ready:
                return _record_refusal(actor, plan, where)
            detail = {"job": plan.job, "sources": [f"{kind}/{name}" for kind, name in plan.sources], "dry_run": dry_run}
            audit.record(
                actor, AuditEvent.Action.JOB_RUN_REQUESTED,
                f"{actor} asked to run {target} now: Job {plan.job}" + (" (dry run)" if dry_run else ""),
                **where, detail=detail,
            )  # fmt: skip
            if dry_run:
                return RunNow(target, RunNow.DRY_RUN, f"Dry run: Job {plan.job} would be created.", job=plan.job)
            created = api.create(jobs_path(target.namespace), plan.body, what=create_jobs_permission(target.namespace))
    except kube.KubeError as error:
        refusal = _refusal(target, _refusal_text(cluster, target, error), getattr(error, "permission", "") or "")
        return _record_refusal(actor, refusal, where)
    name = (created.get("metadata") or {}).get("name", plan.job)
    audit.record(
        actor, AuditEvent.Action.JOB_CREATED, f"Job {name} created from {target} by {actor} (Run now)",
        **where, detail={**detail, "job": name, "uid": (created.get("metadata") or {}).get("uid", "")},
    )  # fmt: skip
    return RunNow(
        target, RunNow.CREATED, f"Job {name} created from {target}: its pods read the current configuration.",
        job=name, sources=plan.sources,
    )  # fmt: skip


def _suspended(cron_job: dict[str, Any]) -> bool:
    return bool((cron_job.get("spec") or {}).get("suspend"))


def _refusal(target: Target, message: str, permission: str = "") -> RunNow:
    return RunNow(target, RunNow.REFUSED, message, permission=permission)


def _refusal_text(cluster: Cluster, target: Target, error: kube.KubeError) -> str:
    if isinstance(error, kube.Forbidden):
        return forbidden_text(cluster, error)
    if isinstance(error, kube.NotFound):
        return f"{target} does not exist (any more) in cluster {cluster.name}."
    if isinstance(error, kube.KubeConfigError):
        return f"Cannot connect to cluster {cluster.name}: {error}"
    return f"Cluster {cluster.name} did not answer as expected: {error}"


def record_refusal(cluster: Cluster, plan: RunNow, actor: str) -> RunNow:
    """A refusal seen by the confirmation is the answer to the operator's request: recorded, as a rollout's is."""
    where = {"cluster_name": cluster.name, "namespace": plan.target.namespace, "object_kind": plan.target.kind,
             "object_name": plan.target.name}  # fmt: skip
    return _record_refusal(actor, plan, where)


def _record_refusal(actor: str, plan: RunNow, where: dict[str, str]) -> RunNow:
    audit.record(
        actor, AuditEvent.Action.JOB_RUN_REFUSED, f"run now of {plan.target} refused: {plan.message}",
        **where, detail={"reason": plan.message, "permission": plan.permission},
    )  # fmt: skip
    return plan
