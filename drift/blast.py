"""What did this change do? For one version of a ConfigMap or Secret: the pods that took it up and when, the
ones that crashed or restarted within N minutes of taking it up (with the reason the pod status gave), and the
rollouts that followed it among its consumers (Driftwatch's, and `kubectl rollout restart`'s as the pods carry
it): the blast radius after the fact.

Only what is stored answers: a container run takes a version up at its start when the version was current then
(env, subPath and a new volume are set up at start), or later when a probe read the version's content in its
volume (drift.verdicts.rules.picked_up); what went wrong is what the pod status said of its runs
(rules.trouble_after). Bounded whatever the number of pods: two queries for the source's lineages and versions,
one for the consumptions with their runs and pods, one for the probes of the volumes that started earlier, one
for every run of the pods that took it up, one for Driftwatch's rollouts and one for kubectl's restarts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.db.models.expressions import RawSQL

from drift.models import Cluster, Consumption, ContainerInstance, Observation, Pod, Rollout
from drift.verdicts import rules
from drift.verdicts.facts import WorkloadRef
from drift.verdicts.read_at import VersionAt, _sources_at
from drift.vocabulary import REFRESHED_MODES, Mode, PickUp

# A volume's probe may read a version's content a while after the next version appeared (the kubelet's delay,
# the probe's own): reads up to this long after it still tell when the volume took the version up.
LATE_READS = timedelta(minutes=15)
PICK_UP_READS = timedelta(hours=1)

# How many minutes past each pick-up trouble is looked for, unless the URL says (``within``, bounded).
TROUBLE_MINUTES_DEFAULT = 10
TROUBLE_MINUTES_MAX = 24 * 60

# Rollouts that changed nothing in the cluster are not something a version caused.
_NOTHING_SENT = (Rollout.Status.REFUSED, Rollout.Status.DRY_RUN, Rollout.Status.NOOP, Rollout.Status.QUEUED)


def trouble_window(value: str | None) -> tuple[int, str]:
    """The minutes after a pick-up to look for trouble, from a URL's ``within``: (minutes, "") or the default
    with the reason the value was refused."""
    if value is None or value == "":
        return TROUBLE_MINUTES_DEFAULT, ""
    if len(value) > 5 or not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= TROUBLE_MINUTES_MAX:
        return TROUBLE_MINUTES_DEFAULT, (
            f"within must be a whole number of minutes from 1 to {TROUBLE_MINUTES_MAX}; "
            f"showing {TROUBLE_MINUTES_DEFAULT}"
        )
    return int(value), ""


@dataclass(frozen=True)
class ContainerPickUp:
    container: str
    init: bool
    mode: Mode
    at: datetime
    how: PickUp
    troubles: list[rules.TroubleSeen]


@dataclass
class PodPickUp:
    """A pod that took the version up: its containers (each with when, how and what went wrong after)."""

    pod_id: int
    pod_uid: str
    pod: str
    workload: WorkloadRef
    workload_id: int
    deleted_at: datetime | None
    containers: list[ContainerPickUp] = field(default_factory=list)

    @property
    def at(self) -> datetime:
        return min(container.at for container in self.containers)

    @property
    def troubles(self) -> list[rules.TroubleSeen]:
        return sorted((t for c in self.containers for t in c.troubles), key=lambda seen: (seen.at, seen.what))

    def as_json(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "pod_uid": self.pod_uid,
            "workload": {"kind": self.workload.kind, "name": self.workload.name},
            "picked_up_at": self.at.isoformat(),
            "containers": [
                {
                    "container": each.container,
                    "mode": str(each.mode),
                    "picked_up_at": each.at.isoformat(),
                    "how": str(each.how),
                    "troubles": [
                        {"at": seen.at.isoformat(), "what": str(seen.what), "reason": seen.reason}
                        for seen in each.troubles
                    ],
                }
                for each in self.containers
            ],
        }


@dataclass(frozen=True)
class RolloutAfter:
    """A rollout of a consumer while the version was the latest: Driftwatch's (``rollout`` set) or a
    `kubectl rollout restart` (its restartedAt, as the workload's pods carry it)."""

    workload: WorkloadRef
    at: datetime
    by: str
    what: str
    rollout: Rollout | None = None


@dataclass
class BlastRadius:
    version: VersionAt
    until: datetime | None  # when the next version appeared (None: it is the latest)
    within: timedelta
    pods: list[PodPickUp]
    rollouts: list[RolloutAfter]

    @property
    def troubled(self) -> list[PodPickUp]:
        return [pod for pod in self.pods if pod.troubles]

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version.as_json(),
            "until": self.until.isoformat() if self.until else None,
            "within_minutes": int(self.within.total_seconds() // 60),
            "pods": [pod.as_json() for pod in self.pods],
            "rollouts": [
                {"workload": str(each.workload), "at": each.at.isoformat(), "by": each.by, "what": each.what}
                for each in self.rollouts
            ],
        }


def blast_radius(
    cluster: Cluster, namespace: str, kind: str, name: str, number: int, within: timedelta | None = None
) -> BlastRadius | None:
    """What version ``number`` (#N, as the source page counts) of one source did; None when there is no #N."""
    return blast_radii(cluster, namespace, kind, name, [number], within).get(number)


def blast_radii(
    cluster: Cluster,
    namespace: str,
    kind: str,
    name: str,
    numbers: Collection[int],
    within: timedelta | None = None,
) -> dict[int, BlastRadius]:
    """What each of some versions (#N) did, by number (a number with no version is left out), in the same
    queries as one version: the consumer runs, reads and rollouts of the span from the first to the end of the
    last, each then judged against each version."""
    within = within if within is not None else timedelta(minutes=TROUBLE_MINUTES_DEFAULT)
    key = (namespace, kind, name)
    sources, numbered = _sources_at(cluster, {key})
    source, named = sources.get(key), numbered.get(key, {})
    wanted = {each.resource_version: each for each in named.values() if each.number in set(numbers)}
    if source is None or not wanted:
        return {}
    chosen: list[tuple[int, VersionAt, datetime | None]] = []  # (index in source.versions, version, its end)
    for index, version in enumerate(source.versions):
        if version.resource_version in wanted:
            following = source.versions[index + 1] if index + 1 < len(source.versions) else None
            chosen.append((index, wanted[version.resource_version], following.changed_at if following else None))
    since = min(source.versions[index].changed_at for index, _, _ in chosen)
    ends = [until for _, _, until in chosen]
    until_last = None if None in ends else max(end for end in ends if end is not None)
    runs = _consumer_runs(cluster, namespace, kind, name, since, until_last)
    probes = _volume_reads(runs, [(source.versions[index].changed_at, until) for index, _, until in chosen])
    picked: dict[int, list[tuple[_ConsumerRun, rules.PickedUp]]] = defaultdict(list)
    for run in runs:
        consumer = rules.Consumer(mode=Mode(run.mode), keys=run.keys, optional=run.optional)
        for index, _, _ in chosen:
            found = rules.picked_up(consumer, run.began, probes.get(run.consumption_id, []), source, index)
            if found is not None:
                picked[index].append((run, found))
    moments = [found.at for pairs in picked.values() for _, found in pairs]
    every_run = (
        _runs_of({run.pod_id for pairs in picked.values() for run, _ in pairs}, min(moments), max(moments) + within)
        if moments
        else {}
    )
    workloads = {run.workload_id: WorkloadRef(run.workload_kind, run.workload_name) for run in runs}
    rollouts = _rollouts_after(cluster, namespace, workloads, since, until_last)
    result: dict[int, BlastRadius] = {}
    for index, named_version, until in chosen:
        pods = _pods(picked[index], every_run, within)
        changed = source.versions[index].changed_at
        after = [each for each in rollouts if changed <= each.at and (until is None or each.at < until)]
        result[named_version.number] = BlastRadius(named_version, until, within, pods, after)
    return result


def _pods(
    picked: list[tuple[_ConsumerRun, rules.PickedUp]],
    every_run: dict[tuple[int, str, bool], list[rules.Run]],
    within: timedelta,
) -> list[PodPickUp]:
    pods: dict[int, PodPickUp] = {}
    taken: set[tuple[int, str, bool]] = set()
    for run, found in sorted(picked, key=lambda pair: pair[1].at):
        container_key = (run.pod_id, run.container, run.init)
        if container_key in taken:  # a later run or another consumption of the same container: its first counts
            continue
        taken.add(container_key)
        pod = pods.setdefault(
            run.pod_id,
            PodPickUp(run.pod_id, run.pod_uid, run.pod, WorkloadRef(run.workload_kind, run.workload_name),
                      run.workload_id, run.pod_deleted_at),
        )  # fmt: skip
        troubles = rules.trouble_after(found.at, every_run.get(container_key, []), within)
        pod.containers.append(ContainerPickUp(run.container, run.init, Mode(run.mode), found.at, found.how, troubles))
    return sorted(pods.values(), key=lambda pod: (pod.at, pod.pod))


@dataclass(frozen=True, slots=True)
class _ConsumerRun:
    consumption_id: int
    mode: str
    keys: tuple[str, ...]
    optional: bool
    container: str
    init: bool
    began: datetime
    pod_id: int
    pod_uid: str
    pod: str
    pod_deleted_at: datetime | None
    workload_id: int
    workload_kind: str
    workload_name: str


def _consumer_runs(
    cluster: Cluster, namespace: str, kind: str, name: str, since: datetime, until: datetime | None
) -> list[_ConsumerRun]:
    """Every consumption of the source by a container run that was alive at some moment after ``since`` and had
    started (or been seen) before ``until``: the runs that may have taken the version up."""
    queryset = Consumption.objects.filter(
        Q(container__ended_at=None) | Q(container__ended_at__gte=since),
        container__pod__cluster=cluster,
        container__pod__namespace=namespace,
        source_kind=kind,
        source_name=name,
    )
    if until is not None:
        queryset = queryset.filter(Q(container__started_at__lt=until) | Q(container__first_seen__lt=until))
    found = []
    for row in queryset.values_list(*_RUN_FIELDS):
        values = dict(zip(_RUN_FIELDS, row, strict=True))
        found.append(
            _ConsumerRun(
                consumption_id=values["pk"],
                mode=values["mode"],
                keys=tuple(values["keys"]),
                optional=values["optional"],
                container=values["container__name"],
                init=values["container__init"],
                # A run never seen running (crash-looping since its start): when Driftwatch first saw it.
                began=values["container__started_at"] or values["container__first_seen"],
                pod_id=values["container__pod_id"],
                pod_uid=values["container__pod__uid"],
                pod=values["container__pod__name"],
                pod_deleted_at=values["container__pod__deleted_at"],
                workload_id=values["container__pod__workload_id"],
                workload_kind=values["container__pod__workload__kind"],
                workload_name=values["container__pod__workload__name"],
            )
        )
    return found


_RUN_FIELDS = (
    "pk", "mode", "keys", "optional", "container__name", "container__init", "container__started_at",
    "container__first_seen", "container__pod_id", "container__pod__uid", "container__pod__name",
    "container__pod__deleted_at", "container__pod__workload_id", "container__pod__workload__kind",
    "container__pod__workload__name",
)  # fmt: skip


def _volume_reads(
    runs: list[_ConsumerRun], spans: list[tuple[datetime, datetime | None]]
) -> dict[int, list[rules.Probe]]:
    """The good reads of each refreshed volume whose run started before the latest version asked about (only they
    may take a version up on disk), within each version's span: from when it appeared to ``LATE_READS`` after the
    next one, and at most ``PICK_UP_READS`` (a volume is rewritten within minutes; a read an hour on says nothing
    new, and a long-lived version's every probe must not be read)."""
    latest_start = max(changed for changed, _ in spans)
    ids = [run.consumption_id for run in runs if run.mode in REFRESHED_MODES and run.began < latest_start]
    if not ids:
        return {}
    when = Q()
    for changed, until in spans:
        last = changed + PICK_UP_READS if until is None else min(until + LATE_READS, changed + PICK_UP_READS)
        when |= Q(observed_at__gte=changed, observed_at__lte=last)
    reads = Observation.objects.filter(when, consumption_id__in=RawSQL("SELECT unnest(%s::bigint[])", (ids,)), ok=True)
    found: dict[int, list[rules.Probe]] = defaultdict(list)
    for consumption_id, observed_at, key_hashes, written_at in reads.values_list(
        "consumption_id", "observed_at", "key_hashes", "volume_written_at"
    ):
        found[consumption_id].append(rules.Probe(observed_at, True, "", key_hashes, written_at))
    return found


def _runs_of(pod_ids: set[int], first: datetime, last: datetime) -> dict[tuple[int, str, bool], list[rules.Run]]:
    """The runs of the containers of these pods that began or ended between ``first`` and ``last`` (the first
    pick-up and the end of the last one's window), by (pod, container, init): a pod crash-looping for days has
    thousands, and only those near a pick-up can be its trouble."""
    found: dict[tuple[int, str, bool], list[rules.Run]] = defaultdict(list)
    near = (
        Q(started_at__range=(first, last))
        | Q(started_at=None, first_seen__range=(first, last))
        | Q(finished_at__range=(first, last))
    )
    rows = ContainerInstance.objects.filter(near, pod_id__in=RawSQL("SELECT unnest(%s::bigint[])", (sorted(pod_ids),)))
    for pod_id, name, init, started_at, first_seen, reason, exit_code, finished_at, waiting in rows.values_list(
        "pod_id", "name", "init", "started_at", "first_seen", "termination_reason", "exit_code", "finished_at",
        "waiting_reason",
    ):  # fmt: skip
        found[(pod_id, name, init)].append(rules.Run(started_at, first_seen, reason, exit_code, finished_at, waiting))
    return found


def _rollouts_after(
    cluster: Cluster, namespace: str, workloads: dict[int, WorkloadRef], since: datetime, until: datetime | None
) -> list[RolloutAfter]:
    if not workloads:
        return []
    names = Q()
    for ref in set(workloads.values()):
        names |= Q(kind=ref.kind, name=ref.name)
    asked = Rollout.objects.filter(names, cluster=cluster, namespace=namespace, requested_at__gte=since).exclude(
        status__in=_NOTHING_SENT
    )
    restarts = Pod.objects.filter(
        workload_id__in=RawSQL("SELECT unnest(%s::bigint[])", (sorted(workloads),)), restarted_at__gte=since
    )
    if until is not None:
        asked = asked.filter(requested_at__lt=until)
        restarts = restarts.filter(restarted_at__lt=until)
    found = [
        RolloutAfter(
            WorkloadRef(row.kind, row.name),
            row.requested_at,
            row.requested_by,
            f"Driftwatch rollout ({row.action}, {row.get_status_display()})",
            row,
        )
        for row in asked
    ]
    for workload_id, restarted_at in restarts.values_list("workload_id", "restarted_at").distinct():
        if restarted_at is not None:
            found.append(RolloutAfter(workloads[workload_id], restarted_at, "", "kubectl rollout restart"))
    return sorted(found, key=lambda each: (each.at, str(each.workload)))
