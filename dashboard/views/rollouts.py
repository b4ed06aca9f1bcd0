"""Roll out → confirmation panel (impact and a server-side dry run) → Confirm rollout → live progress.

Every POST checks the role first (a forged one gets 403 and an audit entry); the domain in drift.rollout
plans again before it patches, so a confirmation shown minutes ago cannot patch a changed situation blindly."""

import uuid

from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from dashboard.access import require_rollout_permission
from drift.models import Cluster, Rollout, Workload
from drift.rollout import (
    Target,
    advance_batch,
    plan_rollout,
    queue_batch,
    record_outcome,
    refresh_rollout,
    request_rollout,
)

TEMPLATE = "dashboard/rollout.html"
# htmx stops polling when the answer's status is 286.
STOP_POLLING = 286


def _target(request: HttpRequest) -> tuple[Cluster, Target]:
    """The workload named by the form, after checking that the user may roll it out."""
    data: QueryDict = request.POST
    names = [data.get(field, "") for field in ("cluster", "namespace", "kind", "name")]
    require_rollout_permission(request, *names)
    cluster = get_object_or_404(Cluster, name=names[0])
    return cluster, Target(names[2], names[1], names[3])


def _render(request: HttpRequest, partial: str, ctx: dict) -> HttpResponse:
    """The partial for htmx; the whole page (the same partial inside) when JavaScript is off."""
    ctx["partial"] = partial
    return render(request, f"{TEMPLATE}#{partial}" if request.htmx else TEMPLATE, ctx)


@require_POST
@vary_on_headers("HX-Request")
def plan(request: HttpRequest) -> HttpResponse:
    """What a rollout would do. A refusal or a no-op is final: it is recorded now, and no Confirm is offered."""
    cluster, target = _target(request)
    found = plan_rollout(cluster, target)
    rollout = None if found.ready else record_outcome(cluster, found, request.user.get_username())
    return _render(request, "rollout-plan", {"cluster": cluster, "plan": found, "rollout": rollout})


@require_POST
@vary_on_headers("HX-Request")
def start(request: HttpRequest) -> HttpResponse:
    cluster, target = _target(request)
    rollout, _ = request_rollout(cluster, target, request.user.get_username())
    response = _render(request, "rollout-progress", {"rollout": rollout})
    return trigger_client_event(response, "rollout-started")


@require_GET
@vary_on_headers("HX-Request")
def progress(request: HttpRequest, pk: int) -> HttpResponse:
    """Polled while the rollout runs; reading the workload here keeps the bar live even without a worker."""
    rollout = get_object_or_404(Rollout.objects.select_related("cluster"), pk=pk)
    if not rollout.finished:
        if rollout.batch:
            advance_batch(rollout.batch)
            rollout.refresh_from_db()
        else:
            rollout = refresh_rollout(rollout)
    response = _render(request, "rollout-progress", {"rollout": rollout})
    if request.htmx and rollout.finished:
        response.status_code = STOP_POLLING
        trigger_client_event(response, "rollout-finished")
    return response


def _selected(request: HttpRequest) -> list[Workload]:
    ids = [value for value in request.POST.getlist("workload") if value.isdigit()]
    workloads = list(Workload.objects.filter(pk__in=ids).select_related("cluster").order_by("namespace", "name"))
    for workload in workloads:
        require_rollout_permission(request, workload.cluster.name, workload.namespace, workload.kind, workload.name)
    return workloads


@require_POST
@vary_on_headers("HX-Request")
def bulk_plan(request: HttpRequest) -> HttpResponse:
    workloads = _selected(request)
    plans = [(w, plan_rollout(w.cluster, Target(w.kind, w.namespace, w.name))) for w in workloads]
    batch_sizes = sorted({w.cluster.rollout_batch_size for w in workloads})
    return _render(request, "bulk-plan", {"plans": plans, "batch_sizes": batch_sizes})


@require_POST
@vary_on_headers("HX-Request")
def bulk_start(request: HttpRequest) -> HttpResponse:
    workloads = _selected(request)
    if not workloads:
        return _render(request, "bulk-plan", {"plans": [], "batch_sizes": []})
    requests = [(w.cluster, Target(w.kind, w.namespace, w.name)) for w in workloads]
    batch_id = queue_batch(requests, request.user.get_username())
    rollouts = advance_batch(batch_id)
    finished = all(rollout.finished for rollout in rollouts)
    response = _render(request, "batch-progress", {"batch": batch_id, "rollouts": rollouts, "finished": finished})
    return trigger_client_event(response, "rollout-started")


@require_GET
@vary_on_headers("HX-Request")
def batch(request: HttpRequest, batch_id: uuid.UUID) -> HttpResponse:
    rollouts = list(Rollout.objects.filter(batch=batch_id).select_related("cluster").order_by("id"))
    if not rollouts:
        raise Http404("no such batch")
    if not all(rollout.finished for rollout in rollouts):
        rollouts = advance_batch(batch_id)
    finished = all(rollout.finished for rollout in rollouts)
    response = _render(request, "batch-progress", {"batch": batch_id, "rollouts": rollouts, "finished": finished})
    if request.htmx and finished:
        response.status_code = STOP_POLLING
        trigger_client_event(response, "rollout-finished")
    return response
