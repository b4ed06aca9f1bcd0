import time
from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from drift.kube import InvalidName
from drift.models import Cluster, Rollout, Workload
from drift.rollout import ROLLABLE_KINDS, Plan, Target, refresh_rollout, request_eviction, request_rollout
from drift.rollout.kinds import EVICTABLE_KINDS, RUNNABLE_KINDS, offers
from drift.rollout.run_now import run_now
from drift.vocabulary import RolloutAction, WorkloadKind

# kubectl's short names, beside the kind and its plural (any case): what people type.
SHORT_NAMES = {
    WorkloadKind.DEPLOYMENT: ("deploy",), WorkloadKind.STATEFUL_SET: ("sts",), WorkloadKind.DAEMON_SET: ("ds",),
    WorkloadKind.POD: ("po",), WorkloadKind.JOB: (), WorkloadKind.CRON_JOB: ("cj",), WorkloadKind.REPLICA_SET: ("rs",),
    WorkloadKind.ROLLOUT: ("ro",),  # an Argo Rollout, as kubectl names it once its CRD is installed
}  # fmt: skip
KINDS = {name: kind for kind in WorkloadKind for name in (kind.lower(), kind.plural, *SHORT_NAMES[kind])}


class Command(BaseCommand):
    help = (
        "Roll out a workload so its pods read the current ConfigMaps and Secrets: the same operations as the "
        "dashboard's Roll out and Restart the stale pods only buttons (and Run now for cronjob/NAME: a Job from its "
        "jobTemplate), recorded under --actor. A refusal exits non-zero and names its reason (the owner, the "
        "window, the permission)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "workload",
            metavar="KIND/NAME",
            help="e.g. deployment/env-demo, sts/db, ds/agent, ro/web (an Argo Rollout), cronjob/nightly (run now), "
            "widget/shelf with --pods stale (an operator-owned workload Driftwatch recorded)",
        )
        parser.add_argument("-n", "--namespace", required=True)
        parser.add_argument("--cluster", help="registered cluster name (default: the only one registered)")
        parser.add_argument("--dry-run", action="store_true", help="plan and ask the API server for a dry run only")
        parser.add_argument("--actor", required=True, help="who asks; recorded in the audit history")
        parser.add_argument("--wait", action="store_true", help="follow the rollout until it ends")
        parser.add_argument(
            "--pods",
            choices=["all", "stale"],
            default="all",
            help="all: patch the pod template (every pod is replaced); stale: evict the stale pods only, as the last "
            "snapshot judged them (their owner replaces them)",
        )
        parser.add_argument("--at-once", type=int, default=1, help="with --pods stale: pods evicted at a time")
        parser.add_argument("--timeout", type=float, default=600, help="seconds --wait waits at most (default 600)")

    def handle(self, *args: object, **options: object) -> None:
        cluster = _cluster(options["cluster"])
        namespace, name = str(options["namespace"]), _name(str(options["workload"]))
        try:
            target = Target(_kind(str(options["workload"]), cluster, namespace), namespace, name)
        except InvalidName as error:
            raise CommandError(str(error)) from None
        actor = str(options["actor"]).strip()
        if not actor:
            raise CommandError("--actor must name who asks for the rollout")
        dry_run = bool(options["dry_run"])
        if target.kind in RUNNABLE_KINDS:
            self._run_now(cluster, target, actor, dry_run)
            return
        if options["pods"] == "stale":
            at_once = int(str(options["at_once"]))
            rollout, plan = request_eviction(cluster, target, actor, at_once=at_once, dry_run=dry_run)
        else:
            rollout, plan = request_rollout(cluster, target, actor, dry_run=dry_run)
        self._describe(plan)
        if not rollout.finished and options["wait"]:
            rollout = self._follow(rollout, float(str(options["timeout"])))
        self.stdout.write(f"{target}: {rollout.get_status_display().lower()}: {rollout.message}")
        unhappy = (Rollout.Status.REFUSED, Rollout.Status.FAILED, Rollout.Status.PAUSED, Rollout.Status.STUCK)
        if rollout.status in unhappy:
            permission = f" (missing permission: {plan.permission})" if plan.permission else ""
            raise CommandError(
                f"rollout of {target} {rollout.get_status_display().lower()}: {rollout.message}{permission}"
            )

    def _run_now(self, cluster: Cluster, target: Target, actor: str, dry_run: bool) -> None:
        done = run_now(cluster, target, actor, dry_run=dry_run)
        if done.refused:
            permission = f" (missing permission: {done.permission})" if done.permission else ""
            raise CommandError(f"run now of {target} refused: {done.message}{permission}")
        for kind, name in done.sources:
            self.stdout.write(f"reads {kind} {name}")
        self.stdout.write(f"{target}: {done.outcome.replace('_', ' ')}: {done.message}")

    def _describe(self, plan: Plan) -> None:
        if plan.strategy:
            self.stdout.write(f"strategy: {plan.strategy}")
        for source in plan.sources:
            state = f"resourceVersion {source.resource_version}" if source.content_hash else "absent"
            self.stdout.write(f"reads {source.kind} {source.name} ({state})")
        if plan.pods:
            verb = "to evict" if plan.action == RolloutAction.EVICT else "to replace"
            self.stdout.write(f"pods {verb}: {', '.join(plan.pods)}")
        if plan.staying:
            self.stdout.write(f"fresh pods staying: {', '.join(plan.staying)}")
        for pod in plan.previews:
            for changed in pod.sources:
                keys = ", ".join(f"{key.key} ({key.status})" for key in changed.keys) or "keys unknown"
                who = "; ".join(str(change) for change in changed.changes)
                self.stdout.write(f"  {pod.name}: {changed.kind} {changed.name}: {keys}{'; ' + who if who else ''}")
        if plan.dry_run:
            self.stdout.write(plan.dry_run)
        for warning in plan.warnings:
            self.stdout.write(f"warning: {warning}")

    def _follow(self, rollout: Rollout, timeout: float) -> Rollout:
        deadline = time.monotonic() + timeout
        while not rollout.finished and time.monotonic() < deadline:
            time.sleep(1)
            rollout = refresh_rollout(rollout)
            if rollout.action == RolloutAction.EVICT:
                waits = f", {rollout.disruption_waits} PodDisruptionBudget wait(s)" if rollout.disruption_waits else ""
                self.stdout.write(f"  {rollout.updated}/{rollout.desired} evicted, {rollout.ready} replaced{waits}")
            else:
                counts = f"{rollout.updated}/{rollout.desired} updated, {rollout.ready} ready"
                self.stdout.write(f"  {counts}, {rollout.available} available")
        return rollout


def _kind(workload: str, cluster: Cluster, namespace: str) -> str:
    """The kind as Kubernetes spells it: one Driftwatch knows, in any case or short name, or the kind of an
    operator-owned workload of that name it recorded (`widget/shelf` for a Widget: --pods stale serves it)."""
    kind, _, name = workload.partition("/")
    if not name:
        raise CommandError(f"give the workload as KIND/NAME, e.g. deployment/env-demo (got {workload!r})")
    if kind.lower() in KINDS:
        return KINDS[kind.lower()]
    recorded = (
        Workload.objects.filter(cluster=cluster, namespace=namespace, name=name, kind__iexact=kind, deleted_at=None)
        .values_list("kind", flat=True)
        .first()
    )
    if recorded is not None and offers(recorded, RolloutAction.EVICT):
        return recorded
    known = ", ".join(sorted(k.lower() for k in ROLLABLE_KINDS | EVICTABLE_KINDS | RUNNABLE_KINDS))
    raise CommandError(
        f"unknown kind {kind!r}: use one of {known}, or the kind of an operator-owned workload Driftwatch has recorded "
        f"in {namespace} (none named {kind}/{name})"
    )


def _name(workload: str) -> str:
    return workload.partition("/")[2]


def _cluster(name: object) -> Cluster:
    if name:
        cluster = Cluster.objects.filter(name=str(name)).first()
        if cluster is None:
            raise CommandError(f"no cluster named {name!r}")
        return cluster
    clusters = list(Cluster.objects.all()[:2])
    if not clusters:
        raise CommandError("no cluster registered: add one with `manage.py cluster add`")
    if len(clusters) > 1:
        raise CommandError("several clusters are registered: say which with --cluster")
    return clusters[0]
