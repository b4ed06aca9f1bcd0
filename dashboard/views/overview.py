from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from dashboard.access import role_of
from dashboard.forms import OverviewFilterForm
from dashboard.htmx import HtmxHttpRequest
from dashboard.pages import at as at_page
from dashboard.pages import overview as page
from dashboard.views.at import render_at
from drift import verdicts
from drift.models import Role


@vary_on_headers("HX-Request")
def overview(request: HtmxHttpRequest) -> HttpResponse:
    """Per cluster and namespace: what needs attention, and counts of the rest. The body polls itself with the
    same query string, so a refresh keeps the filters, and with the stamp of what it shows: when nothing
    changed since, the answer is 204 (htmx keeps the page as it is). A bad filter is left out and said."""
    form = OverviewFilterForm(request.GET)
    filters = form.filters()
    moment = at_page.moment_of(request)
    if moment.asked:  # what ran at that moment, not what runs now
        return render_at(request, moment, page.clusters_shown(filters), namespace=filters.namespace)
    polled = bool(request.htmx and request.htmx.target == "overview-body")
    clusters = page.clusters_shown(filters)
    stamp = verdicts.stamp(clusters)
    if polled and stamp and request.GET.get("stamp") == stamp:
        return HttpResponse(status=204)  # nothing new: htmx keeps what it shows
    query = request.GET.copy()
    query.pop("stamp", None)
    pager = query.copy()
    pager.pop("page", None)
    shown = page.overview(filters, page=_page_number(request.GET.get("page")), clusters=clusters)
    ctx = {
        "filters": filters,
        "filter_errors": form.messages(),
        "clusters": shown,
        "options": {} if polled else page.filter_options(filters, shown),  # the form is not in the polled part
        "verdicts": page.OVERVIEW_VERDICTS,
        "query": query.urlencode(),
        "pager_query": pager.urlencode(),
        "stamp": stamp,
        "restart_line": page.restart_line(shown),
        "is_operator": role_of(request.user) == Role.OPERATOR,
    }
    template = "dashboard/overview.html"
    if polled:
        template += "#overview-body"
    return render(request, template, ctx)


def _page_number(value: str | None) -> int:
    """A page number from the query string; anything else is the first page."""
    return int(value) if value and value.isdigit() and len(value) < 7 else 1


@require_GET
def source_names(request: HttpRequest) -> HttpResponse:
    """The overview's suggestions for its ConfigMap / Secret field, as <option>s, fetched on first focus."""
    form = OverviewFilterForm(request.GET)
    names = page.source_names(form.filters().cluster)
    return render(request, "dashboard/_source_names.html", {"names": names})
