"""The overview's reader: counts per namespace from the database, and one page of workloads per cluster."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Case, Count, F, Q, Value, When, Window
from django.db.models.functions import Collate, RowNumber
from django.utils import timezone

from drift.models import Cluster, WorkloadVerdicts
from drift.verdicts.read import SUMMARY_FIELDS, judged_summaries, pods_with, read_plans, stored_summary
from drift.verdicts.summary import WorkloadSummary
from drift.vocabulary import VERDICT_ORDER, Verdict

ATTENTION = ""  # the default listing: workloads that need attention
SPLIT = "split"


@dataclass
class Tally:
    """Workloads that need attention, fresh ones, those a restart would bring up to date (a stale or new-on-disk-only
    pod), and pods per (worst) verdict."""

    attention: int = 0
    fresh: int = 0
    restart: int = 0
    pods: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICT_ORDER, 0))

    def add(self, summary: WorkloadSummary) -> None:
        if summary.attention:
            self.attention += 1
        else:
            self.fresh += 1
        if summary.restart_needed_pod_count:
            self.restart += 1
        for verdict, count in summary.pods.items():
            self.pods[verdict] = self.pods.get(verdict, 0) + count


@dataclass
class WorkloadPage:
    """One cluster's workloads as the overview shows them: counts per namespace, how many workloads the listing
    lists (and their pods per verdict), and one page of them."""

    namespaces: dict[str, Tally] = field(default_factory=dict)
    every_namespace: set[str] = field(default_factory=set)  # with a workload, whatever the namespace filter
    listed: Tally = field(default_factory=Tally)
    workloads: list[WorkloadSummary] = field(default_factory=list)
    page: int = 1
    pages: int = 1

    @property
    def listed_count(self) -> int:
        return self.listed.attention + self.listed.fresh

    @property
    def pods(self) -> dict[str, int]:
        """Pods per (worst) verdict over every namespace counted."""
        total: dict[str, int] = dict.fromkeys(VERDICT_ORDER, 0)
        for tally in self.namespaces.values():
            for verdict, count in tally.pods.items():
                total[verdict] += count
        return total

    @property
    def restart(self) -> int:
        """Workloads a restart would bring up to date, over every namespace counted."""
        return sum(tally.restart for tally in self.namespaces.values())

    def turn_to(self, page: int, page_size: int) -> None:
        """Set the number of pages for what is listed, and the page shown: the one asked for, within them."""
        self.pages = max(1, -(-self.listed_count // page_size))
        self.page = min(max(page, 1), self.pages)


def listed_by(listing: str, summary: WorkloadSummary) -> bool:
    """Whether a listing lists this workload: ATTENTION (not fresh, or split), SPLIT, or a verdict (a pod in it)."""
    if listing == ATTENTION:
        return summary.attention
    if listing == SPLIT:
        return summary.split
    return bool(summary.pods.get(listing))


def listing_order(listing: str, summary: WorkloadSummary) -> tuple:
    """The attention listing puts the worst first (in VERDICT_ORDER, split-only last), then by name; the others
    go by name."""
    names = (summary.namespace, summary.kind, summary.name)
    if listing != ATTENTION:
        return names
    worst = summary.worst
    return (VERDICT_ORDER.index(worst) if worst != Verdict.FRESH else len(VERDICT_ORDER), *names)


def _listed_q(listing: str) -> Q:
    """``listed_by`` as a database condition on WorkloadVerdicts."""
    if listing not in (ATTENTION, SPLIT, *VERDICT_ORDER):
        raise ValueError(f"no such listing: {listing!r}")  # it becomes part of a lookup's name
    if listing == ATTENTION:
        return Q(attention=True)
    if listing == SPLIT:
        return Q(split=True)
    return Q(**{f"{WorkloadVerdicts.pods_field(listing)}__gt": 0})


def workload_pages(
    clusters: list[Cluster], namespace: str | None, listing: str, page: int, page_size: int, now: datetime | None = None
) -> dict[int, WorkloadPage]:
    """Per cluster (by id): what the overview shows, read without going through every workload in Python.

    Counts come from one aggregate query over the stored summaries; the pages from one query that numbers each
    cluster's rows in order (in C collation, so that it sorts as Python does and merges with what is judged in
    memory). Expired workloads, and clusters whose stored verdicts do not hold, are judged in memory as
    ``workload_summaries`` does and merged in. Queries grow neither with pods nor with clusters, and Python reads
    at most ``page * page_size`` summaries per cluster from the database."""
    now = now or timezone.now()
    plans = read_plans(clusters, now)
    valid = [c.pk for c in clusters if plans[c.pk].valid]
    result = {c.pk: WorkloadPage() for c in clusters}
    # Counted over every namespace, so that the same query also says which namespaces there are (the filter's
    # choices); only the chosen namespace's rows are added up.
    every_namespace = Q(cluster__in=valid) & (Q(expires_at=None) | Q(expires_at__gt=now))
    live = every_namespace & Q(namespace=namespace) if namespace else every_namespace
    listed = _listed_q(listing)
    counts = (
        WorkloadVerdicts.objects.filter(every_namespace)
        .values("cluster_id", "namespace")
        .annotate(
            attention_count=Count("pk", filter=Q(attention=True)),
            fresh_count=Count("pk", filter=Q(attention=False)),
            restart_count=Count("pk", filter=Q(stale_pods__gt=0) | Q(unreloaded_pods__gt=0)),
            listed_attention_count=Count("pk", filter=listed & Q(attention=True)),
            listed_fresh_count=Count("pk", filter=listed & Q(attention=False)),
            **{f"pods_{v}": pods_with(v) for v in VERDICT_ORDER},
            **{f"listed_{v}": pods_with(v, listed) for v in VERDICT_ORDER},
        )
        .order_by()
    )
    for counted in counts:
        row: dict[str, Any] = dict(counted)  # keys made from the verdicts' names
        each = result[row["cluster_id"]]
        each.every_namespace.add(row["namespace"])
        if namespace and row["namespace"] != namespace:
            continue
        tally = each.namespaces.setdefault(row["namespace"], Tally())
        tally.attention += row["attention_count"]
        tally.fresh += row["fresh_count"]
        tally.restart += row["restart_count"]
        each.listed.attention += row["listed_attention_count"]
        each.listed.fresh += row["listed_fresh_count"]
        for verdict in VERDICT_ORDER:
            tally.pods[verdict] += row[f"pods_{verdict}"]
            each.listed.pods[verdict] += row[f"listed_{verdict}"]
    expired: dict[int, list[int]] = defaultdict(list)
    stale_rows = WorkloadVerdicts.objects.filter(cluster__in=valid, expires_at__lte=now)
    for workload_id, cluster_id, its_namespace in stale_rows.values_list("workload_id", "cluster_id", "namespace"):
        result[cluster_id].every_namespace.add(its_namespace)
        if not namespace or its_namespace == namespace:
            expired[cluster_id].append(workload_id)
    in_memory: dict[int, list[WorkloadSummary]] = defaultdict(list)
    ids = {c.name: c.pk for c in clusters}
    # A cluster judged whole in memory is judged in every namespace: all of them are the filter's choices.
    for summary in judged_summaries(clusters, plans, expired, None, now):
        each = result[ids[summary.cluster]]
        each.every_namespace.add(summary.namespace)
        if namespace and summary.namespace != namespace:
            continue
        each.namespaces.setdefault(summary.namespace, Tally()).add(summary)
        if listed_by(listing, summary):
            each.listed.add(summary)
            in_memory[ids[summary.cluster]].append(summary)
    rank = Case(
        *(
            When(Q(**{f"{WorkloadVerdicts.pods_field(v)}__gt": 0}), then=Value(i))
            for i, v in enumerate(VERDICT_ORDER)
            if v != Verdict.FRESH
        ),
        default=Value(len(VERDICT_ORDER)),
    )
    names = {c.pk: c.name for c in clusters}
    by_name = [Collate("namespace", "C"), Collate("kind", "C"), Collate("name", "C")]
    order = [rank, *by_name] if listing == ATTENTION else by_name
    for each in result.values():
        each.turn_to(page, page_size)
    # Every cluster's page in one query: each cluster's rows numbered in the listing's order, up to the longest
    # page asked (a cluster's own may be shorter: cut below).
    stored: dict[int, list[WorkloadSummary]] = defaultdict(list)
    if valid:
        longest = max(result[pk].page for pk in valid) * page_size
        numbered = Window(RowNumber(), partition_by=[F("cluster_id")], order_by=order)
        query = WorkloadVerdicts.objects.filter(live & listed, cluster__in=valid).annotate(place=numbered)
        # Unordered: merged and sorted below (the model's ordering would join the clusters for their names).
        for values in query.filter(place__lte=longest).order_by().values_list(*SUMMARY_FIELDS):
            stored[values[1]].append(stored_summary(values, names))
    for cluster in clusters:
        each = result[cluster.pk]
        merged = sorted(stored[cluster.pk] + in_memory[cluster.pk], key=lambda s: listing_order(listing, s))
        each.workloads = merged[(each.page - 1) * page_size : each.page * page_size]
    return result
