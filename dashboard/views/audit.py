import csv
from collections.abc import Iterator

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers

from dashboard.forms import AuditFilterForm
from dashboard.htmx import HtmxHttpRequest
from dashboard.pages import audit as page
from drift.models import AuditEvent, Cluster

PAGE_SIZE = 100
CSV_COLUMNS = ["at", "actor", "action", "cluster", "namespace", "kind", "name", "message"]
# A cell starting with one of these is a formula to a spreadsheet; prefixing a quote keeps it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@vary_on_headers("HX-Request")
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    filters = form.filters()
    entries = Paginator(page.audit_rows(filters), PAGE_SIZE).get_page(request.GET.get("page"))
    ctx = {
        "filters": filters,
        "filter_errors": form.messages(),
        "page": entries,
        "rows": page.shown_rows(entries.object_list),
        "actions": AuditEvent.Action.choices,
        "families": page.action_families(),
        "clusters": Cluster.objects.values_list("name", flat=True),
        "query": request.GET.urlencode(),
        "counted": page.counted_refusals(timezone.now()),
        "entries_per_hour": settings.DRIFTWATCH_REFUSAL_ENTRIES_PER_HOUR,
        "attempts_per_hour": settings.DRIFTWATCH_ATTEMPT_ENTRIES_PER_HOUR,
    }
    template = "dashboard/audit.html"
    if request.htmx and request.htmx.target == "audit-results":
        template += "#audit-results"
    return render(request, template, ctx)


class _Echo:
    """csv.writer writes into this and gets the line back, so rows stream instead of piling up in memory."""

    def write(self, value: str) -> str:
        return value


def audit_csv(request: HtmxHttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The filtered audit history as CSV. Audit entries hold names and hashes, never a Secret's value.
    A bad filter is a 400 that says which: an export must not silently hold other entries than asked for."""
    form = AuditFilterForm(request.GET)
    if problems := form.messages():
        return HttpResponseBadRequest("\n".join(problems) + "\n", content_type="text/plain; charset=utf-8")
    events = page.audit_events(form.filters())
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for event in events.iterator(chunk_size=500):
            values = [
                event.at.isoformat(),
                event.actor,
                event.action,
                event.cluster_name,
                event.namespace,
                event.object_kind,
                event.object_name,
                event.message,
            ]
            yield writer.writerow([_cell(value) for value in values])

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="driftwatch-audit-{stamp}.csv"'
    return response


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value
