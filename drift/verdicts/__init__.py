"""The verdict, Driftwatch's central idea, in one package. Callers import from here.

- ``rules``: pure rules, plain data in, verdicts out (where a subPath mount's or an env var's verdict is
  decided); ``refresh``: pure arithmetic of the kubelets' refresh delays; ``measured``: the bounded query that
  reads those delays for a cluster.
- ``facts``: stored facts meet the rules; every live consumption becomes one ``DriftRow``.
- ``summary``: a workload's verdicts summed up, and ``worst``, the one definition of the worst verdict.
- ``store``: the writers (after a snapshot cycle, after a watcher recorded a version, after anything else).
- ``read``: the one read path (stored rows, summaries, the overview's stamp, a run's counts).
- ``paging``: the overview's reader (counts per namespace, one page of workloads).
- ``at`` (pure) and ``read_at``: point in time, what ran at a moment T judged at T (a timeline opens it there).
"""

from drift.verdicts.facts import (
    ClusterJudgement,
    ClusterMoment,
    DriftRow,
    SourceRef,
    WorkloadRef,
    cluster_moment,
    drift_rows,
    edit_outcomes,
    judge_cluster,
    live_consumptions,
)
from drift.verdicts.paging import ATTENTION, SPLIT, Tally, WorkloadPage, listed_by, listing_order, workload_pages
from drift.verdicts.read import (
    GaugeTotals,
    as_of,
    cluster_counts,
    clusters_counts,
    clusters_matching_workloads,
    clusters_rows,
    gauge_totals,
    matching_workloads,
    rows,
    rows_with_expiry,
    stamp,
    workload_summaries,
)
from drift.verdicts.read_at import PointInTime, point_in_time
from drift.verdicts.store import after_cycle, facts_changed, source_changed, workloads_changed
from drift.verdicts.summary import WorkloadSummary, pod_verdicts, summarise, worst

__all__ = [
    "ATTENTION",
    "SPLIT",
    "ClusterJudgement",
    "ClusterMoment",
    "DriftRow",
    "GaugeTotals",
    "PointInTime",
    "SourceRef",
    "Tally",
    "WorkloadPage",
    "WorkloadRef",
    "WorkloadSummary",
    "after_cycle",
    "as_of",
    "cluster_counts",
    "cluster_moment",
    "clusters_counts",
    "clusters_matching_workloads",
    "clusters_rows",
    "drift_rows",
    "edit_outcomes",
    "facts_changed",
    "gauge_totals",
    "judge_cluster",
    "listed_by",
    "listing_order",
    "live_consumptions",
    "matching_workloads",
    "pod_verdicts",
    "point_in_time",
    "rows",
    "rows_with_expiry",
    "source_changed",
    "stamp",
    "summarise",
    "workload_pages",
    "workload_summaries",
    "workloads_changed",
    "worst",
]
