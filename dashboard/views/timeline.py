"""The timeline of a namespace (`/clusters/C/NS/timeline/`) and of a workload (its tab), as a page or exported
(`?format=csv|json`, the same filters). Read only. Authorised like point in time: the names are checked against a
scoped viewer's reach before anything is looked up, so another cluster's name or a namespace outside it answers
as one that does not exist (404, with an `access.denied` entry)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashboard.access import require_namespace_read
from dashboard.pages import timeline as page
from dashboard.pages import workload as workload_page
from drift import timeline as tl
from drift.models import Cluster, Workload
from drift.vocabulary import TimelineKind


@require_GET
def namespace_timeline(request: HttpRequest, cluster: str, namespace: str) -> HttpResponse:
    require_namespace_read(request, cluster, namespace)
    found = Cluster.objects.filter(name=cluster).first()
    if found is None:
        raise Http404("No such cluster.")
    asked = page.asked(request.GET)
    workload = None
    if asked.workload and not asked.errors:
        workload = page.find_workload(found, namespace, asked.workload)
        if workload is None:
            asked.errors.append(f"workload: no {asked.workload[:80]} in namespace {namespace}.")
    return _answer(request, found, namespace, workload, asked, tab=False)


@require_GET
def workload_timeline(request: HttpRequest, cluster: str, namespace: str, kind: str, name: str) -> HttpResponse:
    require_namespace_read(request, cluster, namespace, kind, name)
    found = workload_page.find_workload(cluster, namespace, kind, name)
    if found is None:
        raise Http404("No such workload.")
    return _answer(request, found.cluster, namespace, found, page.asked(request.GET), tab=True)


def _answer(
    request: HttpRequest, cluster: Cluster, namespace: str, workload: Workload | None, asked: page.Asked, tab: bool
) -> HttpResponse:
    export = asked.format in ("csv", "json")
    if asked.errors or asked.filters is None:
        if export or any(error.startswith("format:") for error in asked.errors):
            return HttpResponse("\n".join(asked.errors) + "\n", status=400, content_type="text/plain; charset=utf-8")
        return render(request, "dashboard/timeline.html", _context(request, cluster, namespace, workload, asked, tab),
                      status=400)  # fmt: skip
    scope = tl.Scope(cluster, namespace, workload)
    if export:
        entries = tl.timeline(scope, asked.filters, page=1, page_size=tl.EXPORT_LIMIT)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        if asked.format == "csv":
            response = HttpResponse(page.as_csv(entries.entries), content_type="text/csv; charset=utf-8")
        else:
            body = page.as_json(cluster.name, namespace, workload, asked.filters, entries)
            response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="driftwatch-timeline-{stamp}.{asked.format}"'
        return response
    ctx = _context(request, cluster, namespace, workload, asked, tab)
    entries = tl.timeline(scope, asked.filters, page=asked.page)
    ctx["entries"] = page.shown(cluster.name, namespace, entries.entries, asked.focus)
    ctx["paged"] = entries
    ctx["chart"] = page.stale_series(tl.stale_pods(scope, asked.filters), asked.filters.start, asked.filters.end)
    return render(request, "dashboard/timeline.html", ctx)


def _context(
    request: HttpRequest, cluster: Cluster, namespace: str, workload: Workload | None, asked: page.Asked, tab: bool
) -> dict[str, object]:
    filters = asked.filters
    return {
        "cluster": cluster,
        "namespace": namespace,
        "workload": workload,
        "tab": tab,
        "asked": asked,
        "errors": asked.errors,
        "kinds": [(kind.value, kind.label) for kind in TimelineKind],
        "chosen": {kind.value for kind in filters.kinds} if filters else set(request.GET.getlist("kind")),
        "source": request.GET.get("source", "")[:253],
        "workload_filter": request.GET.get("workload", "")[:300],
        "from_value": page.picker(filters.start) if filters else "",
        "to_value": page.picker(filters.end) if filters else "",
        "query": page.base_query(request.GET),
        "next_query": page.base_query(request.GET, page=str(asked.page + 1)),
        "previous_query": page.base_query(request.GET, page=str(asked.page - 1) if asked.page > 2 else ""),
    }
