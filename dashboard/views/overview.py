from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from dashboard.access import role_of
from dashboard.forms import OverviewFilterForm
from dashboard.htmx import HtmxHttpRequest
from dashboard.pages import overview as page
from drift.models import Role


@vary_on_headers("HX-Request")
def overview(request: HtmxHttpRequest) -> HttpResponse:
    """Per cluster, namespace and workload: pods per verdict. The body polls itself with the same query
    string, so a refresh keeps the filters. A bad filter is left out and said."""
    form = OverviewFilterForm(request.GET)
    filters = form.filters()
    ctx = {
        "filters": filters,
        "filter_errors": form.messages(),
        "clusters": page.overview(filters),
        "options": page.filter_options(filters.cluster),
        "verdicts": page.OVERVIEW_VERDICTS,
        "query": request.GET.urlencode(),
        "is_operator": role_of(request.user) == Role.OPERATOR,
    }
    template = "dashboard/overview.html"
    if request.htmx and request.htmx.target == "overview-body":
        template += "#overview-body"
    return render(request, template, ctx)
