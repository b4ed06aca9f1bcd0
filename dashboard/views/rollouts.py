"""Roll out → confirmation panel (impact and a server-side dry run) → Confirm rollout → live progress. Restart the
stale pods only → the pods that go and stay, with what changes for each → Confirm → the same live progress.

Every POST names a workload (or a rollout) by primary key; the permission check and the action use that
same row, so no name the client sent reaches a Kubernetes path. GETs only read: progress pages show what
the `track_rollouts` beat task recorded, and never advance a batch or send a patch."""

import uuid

from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from dashboard.access import refuse_unknown_workload, require_rollout_permission
from dashboard.forms import RolloutFilterForm
from dashboard.htmx import HtmxHttpRequest
from dashboard.pages import rollouts as page
from drift.bounded import bounded
from drift.models import Cluster, Rollout, Workload
from drift.rollout import (
    REASON_MAX,
    Target,
    advance_batch,
    cancel_batch,
    cancel_rollout,
    plan_eviction,
    plan_rollout,
    queue_batch,
    record_outcome,
    request_eviction,
    request_rollout,
)
from drift.rollout.run_now import plan_run_now, record_refusal, run_now
from drift.vocabulary import RolloutAction

TEMPLATE = "dashboard/rollout.html"
# htmx stops polling when the answer's status is 286.
STOP_POLLING = 286
_NAME_FIELDS = ("workload", "cluster", "namespace", "kind", "name")


def _workload(request: HtmxHttpRequest) -> Workload:
    """The workload the form names by id, after checking that the user may roll it out."""
    value = request.POST.get("workload", "")
    workload = None
    if value.isdigit() and len(value) < 19:
        workload = Workload.objects.select_related("cluster").filter(pk=int(value)).first()
    if workload is None:
        refuse_unknown_workload(request, {field: request.POST.get(field, "") for field in _NAME_FIELDS})
    require_rollout_permission(request, workload)
    return workload


def _render(request: HtmxHttpRequest, partial: str, ctx: dict) -> HttpResponse:
    """The partial for htmx; the whole page (the same partial inside) when JavaScript is off."""
    ctx["partial"] = partial
    return render(request, f"{TEMPLATE}#{partial}" if request.htmx else TEMPLATE, ctx)


@require_POST
@vary_on_headers("HX-Request")
def plan(request: HtmxHttpRequest) -> HttpResponse:
    """What a rollout would do (read only). A refusal or a no-op is the answer to the operator's request: it is
    recorded, and no Confirm is offered."""
    workload = _workload(request)
    found = plan_rollout(workload.cluster, Target.of(workload))
    rollout = None if found.ready else record_outcome(workload.cluster, found, request.user.get_username())
    ctx = {
        "cluster": workload.cluster, "workload": workload, "plan": found, "rollout": rollout,
        "all_fresh": page.every_pod_fresh(workload),
    }  # fmt: skip
    return _render(request, "rollout-plan", ctx)


@require_GET
def confirm(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The rollout confirmation a notice links to: the same panel as Roll out gives, for an operator allowed on
    the workload's own cluster and namespace (403 otherwise). A GET only reads: the plan's dry run changes
    nothing, and a refusal seen here is not recorded (the Confirm POST records what it does)."""
    workload = Workload.objects.select_related("cluster").filter(pk=pk).first()
    if workload is None:
        refuse_unknown_workload(request, {"workload": str(pk)})
    require_rollout_permission(request, workload)
    found = plan_rollout(workload.cluster, Target.of(workload))
    ctx = {
        "cluster": workload.cluster, "workload": workload, "plan": found, "rollout": None, "partial": "rollout-plan",
        "all_fresh": page.every_pod_fresh(workload),
    }  # fmt: skip
    return render(request, TEMPLATE, ctx)


@require_POST
@vary_on_headers("HX-Request")
def start(request: HtmxHttpRequest) -> HttpResponse:
    workload = _workload(request)
    actor = request.user.get_username()
    rollout, _ = request_rollout(workload.cluster, Target.of(workload), actor, reason=_reason(request))
    response = _render(request, "rollout-progress", {"rollout": rollout})
    return trigger_client_event(response, "rollout-started")


def _at_once(request: HtmxHttpRequest) -> int:
    """Pods evicted at a time, from the form; out-of-range or malformed values are refused by the plan itself."""
    value = request.POST.get("at_once", "1")
    return int(value) if value.isdigit() and len(value) < 4 else 0


@require_POST
@vary_on_headers("HX-Request")
def evict_plan(request: HtmxHttpRequest) -> HttpResponse:
    """Restart the stale pods only: which pods go and which stay, what changes for each (read only). A refusal
    or a no-op is recorded, and no Confirm is offered."""
    workload = _workload(request)
    found = plan_eviction(workload.cluster, Target.of(workload), at_once=_at_once(request))
    rollout = None if found.ready else record_outcome(workload.cluster, found, request.user.get_username())
    ctx = {"cluster": workload.cluster, "workload": workload, "plan": found, "rollout": rollout}
    return _render(request, "evict-plan", ctx)


@require_POST
@vary_on_headers("HX-Request")
def evict_start(request: HtmxHttpRequest) -> HttpResponse:
    workload = _workload(request)
    rollout, _ = request_eviction(
        workload.cluster, Target.of(workload), request.user.get_username(), at_once=_at_once(request)
    )
    response = _render(request, "rollout-progress", {"rollout": rollout})
    return trigger_client_event(response, "rollout-started")


@require_POST
@vary_on_headers("HX-Request")
def run_now_plan(request: HtmxHttpRequest) -> HttpResponse:
    """Run now (a CronJob): the Job that would be created and what it reads, with a dry run (read only). A refusal
    is recorded, and no Confirm is offered."""
    workload = _workload(request)
    found = plan_run_now(workload.cluster, Target.of(workload))
    if found.refused:
        record_refusal(workload.cluster, found, request.user.get_username())
    return _render(request, "run-now", {"cluster": workload.cluster, "workload": workload, "run": found})


@require_POST
@vary_on_headers("HX-Request")
def run_now_start(request: HtmxHttpRequest) -> HttpResponse:
    """Create the Job: authorised on the CronJob found by id, audited before the API call (drift.rollout.run_now)."""
    workload = _workload(request)
    done = run_now(workload.cluster, Target.of(workload), request.user.get_username())
    return _render(request, "run-now", {"cluster": workload.cluster, "workload": workload, "run": done})


@require_GET
@vary_on_headers("HX-Request")
def progress(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Polled while the rollout runs; shows what the follower recorded, and changes nothing."""
    rollout = get_object_or_404(Rollout.objects.select_related("cluster"), pk=pk)
    response = _render(request, "rollout-progress", {"rollout": rollout})
    if request.htmx and rollout.finished:
        response.status_code = STOP_POLLING
        trigger_client_event(response, "rollout-finished")
    return response


@require_POST
@vary_on_headers("HX-Request")
def cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    rollout = get_object_or_404(Rollout.objects.select_related("cluster"), pk=pk)
    require_rollout_permission(request, rollout)
    cancel_rollout(rollout, request.user.get_username())
    response = _render(request, "rollout-progress", {"rollout": rollout})
    return trigger_client_event(response, "rollout-finished")


def _reason(request: HtmxHttpRequest) -> str:
    """The operator's optional reason, cut to its column (and marked so) when longer."""
    return bounded(request.POST.get("reason", "").strip(), REASON_MAX)


def _selected(request: HtmxHttpRequest) -> list[Workload]:
    ids = [int(value) for value in request.POST.getlist("workload") if value.isdigit() and len(value) < 19]
    workloads = list(Workload.objects.filter(pk__in=ids).select_related("cluster").order_by("namespace", "name"))
    for workload in workloads:
        require_rollout_permission(request, workload)
    return workloads


# What a bulk form can ask for (Run now starts a CronJob's Job, one at a time, from its own page).
_BULK_ACTIONS = (RolloutAction.TEMPLATE, RolloutAction.EVICT)


def _bulk_action(request: HtmxHttpRequest) -> RolloutAction | None:
    """Which action the bulk form asks for: the template patch (the default) or the stale pods' eviction."""
    value = request.POST.get("action", RolloutAction.TEMPLATE.value)
    return next((action for action in _BULK_ACTIONS if action.value == value), None)


@require_POST
@vary_on_headers("HX-Request")
def bulk_plan(request: HtmxHttpRequest) -> HttpResponse:
    action = _bulk_action(request)
    if action is None:
        return HttpResponseBadRequest("unknown action")
    workloads = _selected(request)
    if action == RolloutAction.EVICT:
        plans = [(w, plan_eviction(w.cluster, Target.of(w)), False) for w in workloads]
    else:
        plans = [(w, plan_rollout(w.cluster, Target.of(w)), page.every_pod_fresh(w)) for w in workloads]
    batch_sizes = sorted({w.cluster.rollout_batch_size for w in workloads})
    return _render(request, "bulk-plan", {"plans": plans, "batch_sizes": batch_sizes, "action": action})


@require_POST
@vary_on_headers("HX-Request")
def bulk_start(request: HtmxHttpRequest) -> HttpResponse:
    """Queue the batch and start its first group now (an explicit POST); the beat task does the rest."""
    action = _bulk_action(request)
    if action is None:
        return HttpResponseBadRequest("unknown action")
    workloads = _selected(request)
    if not workloads:
        return _render(request, "bulk-plan", {"plans": [], "batch_sizes": [], "action": action})
    batch_id = queue_batch(
        [(w.cluster, Target.of(w)) for w in workloads],
        request.user.get_username(),
        reason=_reason(request),
        action=action,
    )
    rollouts = advance_batch(batch_id)
    response = _render(request, "batch-progress", _batch_context(batch_id, rollouts))
    return trigger_client_event(response, "rollout-started")


def _batch_rows(batch_id: uuid.UUID) -> list[Rollout]:
    rollouts = list(Rollout.objects.filter(batch=batch_id).select_related("cluster").order_by("id"))
    if not rollouts:
        raise Http404("no such batch")
    return rollouts


def _batch_context(batch_id: uuid.UUID, rollouts: list[Rollout]) -> dict:
    return {"batch": batch_id, "rollouts": rollouts, "finished": all(rollout.finished for rollout in rollouts)}


@require_GET
@vary_on_headers("HX-Request")
def batch(request: HtmxHttpRequest, batch_id: uuid.UUID) -> HttpResponse:
    """Polled while the batch runs; shows what the follower recorded, and changes nothing."""
    ctx = _batch_context(batch_id, _batch_rows(batch_id))
    response = _render(request, "batch-progress", ctx)
    if request.htmx and ctx["finished"]:
        response.status_code = STOP_POLLING
        trigger_client_event(response, "rollout-finished")
    return response


@require_POST
@vary_on_headers("HX-Request")
def batch_cancel(request: HtmxHttpRequest, batch_id: uuid.UUID) -> HttpResponse:
    """Cancel what is left of a batch; the user must be allowed on every rollout of it."""
    for rollout in _batch_rows(batch_id):
        require_rollout_permission(request, rollout)
    cancel_batch(batch_id, request.user.get_username())
    response = _render(request, "batch-progress", _batch_context(batch_id, _batch_rows(batch_id)))
    return trigger_client_event(response, "rollout-finished")


@require_GET
def rollout_list(request: HtmxHttpRequest) -> HttpResponse:
    """Running and recent rollouts, filtered by cluster, namespace and state (every user reads every rollout, as
    on every other page); a bad filter is left out and said."""
    form = RolloutFilterForm(request.GET)
    filters = form.filters()
    ctx = {
        "form": form,
        "filters": filters,
        "filter_errors": form.messages(),
        "rollouts": list(page.rollouts(filters)),
        "limit": page.LIMIT,
        "clusters": list(Cluster.objects.order_by("name").values_list("name", flat=True)),
        "namespaces": list(Rollout.objects.order_by("namespace").values_list("namespace", flat=True).distinct()),
        "states": form.fields["state"].choices,  # type: ignore[attr-defined]
    }
    return render(request, "dashboard/rollouts.html", ctx)
