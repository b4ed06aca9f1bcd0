from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from dashboard.access import may_read, may_roll_out, refuse_read, require_operator_on
from dashboard.forms import ReloadSettingForm
from dashboard.htmx import HtmxHttpRequest
from dashboard.pages import at as at_page
from dashboard.pages import workload as page
from dashboard.views.at import render_at
from drift.models import Workload
from drift.reload_settings import container_names, set_reload
from drift.rollout.kinds import ROLLABLE_KINDS, RUNNABLE_KINDS, offers
from drift.vocabulary import RolloutAction

PARTIALS = {"workload-pods", "rollout-history"}


@vary_on_headers("HX-Request")
def workload(request: HtmxHttpRequest, cluster: str, namespace: str, kind: str, name: str) -> HttpResponse:
    found = page.find_workload(cluster, namespace, kind, name)
    if found is None:
        raise Http404(f"no workload {kind}/{name} in namespace {namespace} of cluster {cluster}")
    moment = at_page.moment_of(request)
    if moment.asked:  # what its pods ran at that moment
        if not may_read(request.user, found.cluster.name, found.namespace):
            refuse_read(request, found.cluster.name, found.namespace, found.kind, found.name)
        return render_at(request, moment, [found.cluster], namespace=found.namespace, workload=found)
    ctx = {
        "detail": page.workload_detail(found),
        "workload": found,
        "rollable": found.kind in ROLLABLE_KINDS,
        "can_roll_out": found.kind in ROLLABLE_KINDS
        and not found.cluster.read_only
        and may_roll_out(request.user, found.cluster.name, found.namespace),
        "can_evict": offers(found.kind, RolloutAction.EVICT)
        and not found.cluster.read_only
        and may_roll_out(request.user, found.cluster.name, found.namespace),
        "can_run_now": found.kind in RUNNABLE_KINDS
        and not found.cluster.read_only
        and may_roll_out(request.user, found.cluster.name, found.namespace),
        "next_run": page.next_run_words(found.kind, found.schedule),
        "can_set_reload": may_roll_out(request.user, found.cluster.name, found.namespace),
        "reload_form": ReloadSettingForm(containers=container_names(found)),
        "reload": page.reload_info(found),
    }
    template = "dashboard/workload.html"
    if request.htmx and request.htmx.target in PARTIALS:
        template += f"#{request.htmx.target}"
    return render(request, template, ctx)


@require_POST
def set_reload_setting(request: HttpRequest, pk: int) -> HttpResponse:
    """An operator says whether the workload's app re-reads a rewritten config file: authorised on the workload
    found by its id, audited, its verdicts judged again; then back to the workload's page."""
    workload = get_object_or_404(Workload.objects.select_related("cluster"), pk=pk)
    require_operator_on(request, workload, "change the reload setting of a workload")
    form = ReloadSettingForm(request.POST, containers=container_names(workload))
    back = redirect("workload", workload.cluster.name, workload.namespace, workload.kind, workload.name)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"Reload setting, {field}: {' '.join(str(e) for e in errors)}")
        return back
    said = set_reload(
        workload, form.cleaned_data["container"], form.cleaned_data["reload"], request.user.get_username()
    )
    messages.success(request, said)
    return back
