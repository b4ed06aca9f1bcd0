"""Rolling out: a strategic-merge patch of a workload's pod-template annotation, so that its controller
replaces the pods with ones that read the current ConfigMaps and Secrets.

- `kinds`: one small class per kind (Deployment, StatefulSet, DaemonSet): path, permission, strategy,
  business and progress, read from the workload as a plain dict. Pure, table-tested.
- `template`: the sources a pod template reads, the annotation's hash of their content, the patch.
- `plan`: what a rollout would do, read only (it writes no row).
- `record`: the row and its audit entry, and the one lock order (cluster advisory lock, then rows).
- `execute`: plan, record `patching`, patch outside transactions, record the answer (or read again).
- `follow`: progress to the end, stuck past the cluster's deadline, cancel.
- `evict`: the other action, "Restart the stale pods only": evict the stale pods a group at a time (Eviction
  API, PodDisruptionBudgets respected); `preview`: what each pod going will pick up, and who changed it.
- `run_now`: a CronJob's one action, a Job from its jobTemplate now (audited before the POST).
- `batch`: bulk rollouts a group at a time, advanced by the beat task.
A completed rollout sends `signals.rollout_completed`; drift.apps turns it into a snapshot."""

from drift.rollout.batch import advance_batch, cancel_batch, follow_rollouts, queue_batch
from drift.rollout.evict import advance_eviction, next_step, plan_eviction, request_eviction
from drift.rollout.execute import request_rollout
from drift.rollout.follow import cancel_rollout, refresh_rollout
from drift.rollout.kinds import (
    KINDS,
    ROLLABLE_KINDS,
    WHAT_WORKS_INSTEAD,
    Progress,
    Target,
    busy_reason,
    deadline_exceeded,
    not_rollable_reason,
    paused_reason,
    progress_of,
    update_strategy,
)
from drift.rollout.plan import Plan, SourceState, plan_rollout
from drift.rollout.record import REASON_MAX, record_dry_run, record_outcome
from drift.rollout.signals import rollout_completed
from drift.rollout.template import (
    config_hash,
    gitops_warning,
    referenced_sources,
    restart_tool_warning,
    selector_string,
)

__all__ = [
    "KINDS",
    "REASON_MAX",
    "ROLLABLE_KINDS",
    "WHAT_WORKS_INSTEAD",
    "Plan",
    "Progress",
    "SourceState",
    "Target",
    "advance_batch",
    "advance_eviction",
    "busy_reason",
    "cancel_batch",
    "cancel_rollout",
    "config_hash",
    "deadline_exceeded",
    "follow_rollouts",
    "gitops_warning",
    "next_step",
    "not_rollable_reason",
    "paused_reason",
    "plan_eviction",
    "plan_rollout",
    "progress_of",
    "queue_batch",
    "record_dry_run",
    "record_outcome",
    "referenced_sources",
    "refresh_rollout",
    "request_eviction",
    "request_rollout",
    "restart_tool_warning",
    "rollout_completed",
    "selector_string",
    "update_strategy",
]
