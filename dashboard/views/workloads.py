from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from dashboard.access import may_roll_out
from dashboard.htmx import HtmxHttpRequest
from dashboard.pages import workload as page
from drift.vocabulary import ROLLABLE_KINDS

PARTIALS = {"workload-pods", "rollout-history"}


@vary_on_headers("HX-Request")
def workload(request: HtmxHttpRequest, cluster: str, namespace: str, kind: str, name: str) -> HttpResponse:
    found = page.find_workload(cluster, namespace, kind, name)
    if found is None:
        raise Http404(f"no workload {kind}/{name} in namespace {namespace} of cluster {cluster}")
    ctx = {
        "detail": page.workload_detail(found),
        "workload": found,
        "rollable": found.kind in ROLLABLE_KINDS,
        "can_roll_out": found.kind in ROLLABLE_KINDS
        and not found.cluster.read_only
        and may_roll_out(request.user, found.cluster.name, found.namespace),
    }
    template = "dashboard/workload.html"
    if request.htmx and request.htmx.target in PARTIALS:
        template += f"#{request.htmx.target}"
    return render(request, template, ctx)
