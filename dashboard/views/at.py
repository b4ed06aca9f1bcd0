"""``?at=`` on the overview, namespace and workload pages: what ran at that moment (dashboard.pages.at). A bad
moment is answered 400 with the reason on the page; a namespace outside a scoped viewer's reach is 404."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import quote, urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from dashboard.access import readable_namespaces, require_namespace_read
from dashboard.pages import at as page
from drift.models import Cluster, Workload


def render_at(
    request: HttpRequest,
    moment: page.Moment,
    clusters: list[Cluster],
    namespace: str = "",
    workload: Workload | None = None,
    here: str = "",
) -> HttpResponse:
    """The point-in-time page for ``clusters`` (narrowed to ``namespace`` or ``workload``), each cluster cut to
    the namespaces the user may read."""
    kept = {key: request.GET[key] for key in ("cluster", "namespace") if request.GET.get(key)}
    ctx = {
        "moment": moment,
        "namespace": namespace,
        "workload": workload,
        "here": here or request.path,
        "picker": page.picker_value(moment.at),
        "shortcuts": page.shortcuts(moment.at),
        "keep": kept,
        "clusters": [],
    }
    if moment.at is None:
        return render(request, "dashboard/at.html", ctx, status=400)
    namespaces: dict[str, Collection[str] | None] = {}
    for cluster in clusters:
        allowed = readable_namespaces(request.user, cluster.name)
        if namespace:
            allowed = {namespace} if allowed is None or namespace in allowed else set()
        namespaces[cluster.name] = allowed
    shown = [cluster for cluster in clusters if namespaces[cluster.name] != set()]
    ctx["at_query"] = page.at_query(moment.at)
    paged = page.clusters_at(
        moment.at, shown, namespaces, [workload.pk] if workload else None, page.page_number(request.GET.get("page"))
    )
    ctx["clusters"] = paged.clusters
    ctx["paged"] = paged
    keep = "".join(f"{key}={quote(value)}&" for key, value in kept.items())
    ctx["page_query"] = f"{keep}{ctx['at_query']}"
    return render(request, "dashboard/at.html", ctx)


@require_GET
def namespace(request: HttpRequest, cluster: str, namespace: str) -> HttpResponse:
    """One namespace of one cluster: with ``?at=`` what ran there then; without, the overview narrowed to it.
    The scope is checked on the names before anything is looked up, so another cluster's name or a namespace
    outside a scoped viewer's reach answers as one that does not exist."""
    require_namespace_read(request, cluster, namespace)
    found = Cluster.objects.filter(name=cluster).first()
    if found is None:
        raise Http404("No such cluster.")
    moment = page.moment_of(request)
    if not moment.asked:
        return redirect(f"{reverse('overview')}?{urlencode({'cluster': cluster, 'namespace': namespace})}")
    return render_at(request, moment, [found], namespace=namespace)
